"""Tasks of the `email` queue."""
