"""Cell search."""
