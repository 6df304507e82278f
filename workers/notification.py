"""Tasks of the ``notification`` queue."""

from __future__ import annotations

from typing import Any

from csgoflip_jobs import app
from csgoflip_jobs.notifications.service import NotificationService


@app.task(name="send-notification")
def send_notification(
    user_id: int | None, type: str, payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Publish a notification to a user (or everyone) and keep it for reconnecting clients."""
    notification = NotificationService().send(user_id, type, payload or {})
    return {"id": notification.id}
