"""Notifications and the WebSocket gateway that delivers them to browsers."""
