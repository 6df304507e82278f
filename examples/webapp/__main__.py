"""``python -m examples.webapp [--host 127.0.0.1] [--port 8000] [--log-level info]``: serve
the example app."""

from __future__ import annotations

import argparse

import uvicorn

from csgoflip_jobs.settings import get_settings


def main() -> None:
    """Serve the example on one uvicorn worker."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    options = parser.parse_args()
    settings = get_settings()
    uvicorn.run(
        "examples.webapp.app:create_app",
        factory=True,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        ws_max_size=settings.websocket_max_message_bytes,
        # Only a configured proxy may say who the client is (X-Forwarded-For): the sign-in
        # limit is keyed on it, and a header anyone can set would be a way around it.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or "",
    )


if __name__ == "__main__":
    main()
