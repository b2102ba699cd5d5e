"""DeltaV2A's built-in plugins. They register through the `deltav2a` entry points exactly
like a third-party package would."""
