"""Style label -> effect plan: parameter layouts, running a controller (its plugin class is in
api/) and its training records, weights on disk, edit strength, the inference-time search."""
