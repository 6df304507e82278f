"""Tasks of the `notification` queue."""
