"""Style label -> effect plan: parameter layouts, the controller contract and training
records, weights on disk, edit strength, the inference-time search."""
