"""Media files and arrays: reading, checking and writing audio and images (io), the Wand glue
of image effects (wand), plots, generated example media. Knows no plugins."""
