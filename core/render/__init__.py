"""Rendering an audio effect chain: effect settings -> Pedalboard (or outside-Pedalboard)
processing -> A'."""
