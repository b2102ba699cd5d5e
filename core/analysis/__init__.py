"""The analysis pipeline of the pipeline note (seed 001) on top of the plugin core.

extract (embeddings of originals, augmentations and their deltas, as Parquet) ->
sensitivity (Phase 0-a, shared with `deltav2a sensitivity --from-extract`) -> linearity
(Phase 0-b) -> discover (Phase 1, text anchors and the discovery matrix) -> decoder
(Phase 3). Every step works with any registered encoder pair and any registered effects;
the note's own effect set lives in `deltav2a_plugins.note_effects`. See docs/analysis.md.

Nothing is imported here: the CLI imports the step modules inside its commands.
"""
