"""Built-in encoders (registered through the deltav2a entry points)."""
