"""Support code for the tests: workers, Redis servers, polling, helpers."""
