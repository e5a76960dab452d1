"""pilot layer (see README's map)."""
