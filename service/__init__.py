"""jobwire: service."""
