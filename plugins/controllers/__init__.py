"""Built-in controllers (registered through the deltav2a entry points)."""
