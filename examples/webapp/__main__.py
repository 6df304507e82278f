"""``python -m examples.webapp [--host 127.0.0.1] [--port 8000] [--log-level info]``: serve
the example app."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    """Serve the example on one uvicorn worker."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    options = parser.parse_args()
    uvicorn.run(
        "examples.webapp.app:create_app",
        factory=True,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
    )


if __name__ == "__main__":
    main()
