"""The job engine: BullMQ's job semantics on Celery and kombu."""
