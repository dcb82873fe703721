"""jobwire: consumers."""
