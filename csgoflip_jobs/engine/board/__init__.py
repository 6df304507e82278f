"""The Jobs board: what the platform holds in Redis, per queue, state and job, and the
operators' actions on it, for Flower's Jobs pages and their JSON API.

Plain data and calls on :class:`~csgoflip_jobs.engine.job_queue.JobQueue`; the Flower
side (handlers, templates, authentication) is in ``engine/celery_ext/flower_jobs.py``.
"""
