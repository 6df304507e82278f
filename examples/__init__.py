"""Examples of using the platform."""
