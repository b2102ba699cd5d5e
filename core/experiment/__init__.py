"""Run folders and their stages, reports, comparisons, diagnostics, the transfer-quality
harness and the vocabulary audit."""
