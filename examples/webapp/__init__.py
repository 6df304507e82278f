"""The example web app: ``python -m examples.webapp [--port 8000]``."""
