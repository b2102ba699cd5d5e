"""Style labels: vocabularies by name, encoders' text/media embeddings, the label of an edit
(StyleLabel), calibration, pairs of media."""
