"""store layer (see README's map)."""
