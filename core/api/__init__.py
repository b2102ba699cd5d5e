"""The plugin contract: hooks, the registry, typed parameters, the effect/encoder base classes
and the vocabulary type. CLI start-up imports only this layer (and the top-level modules)."""
