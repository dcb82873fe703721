"""jobwire: config."""
