"""Every use of a kombu, Celery or Flower private name, in one place."""
