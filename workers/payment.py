"""Tasks of the `payment` queue."""
