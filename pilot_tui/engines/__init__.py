"""engines layer (see README's map)."""
