"""Built-in audio_effects (registered through the deltav2a entry points)."""
