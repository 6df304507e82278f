"""``python -m examples.webapp [--host 127.0.0.1] [--port 8000]``: serve the example app."""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    """Serve the example on one uvicorn worker."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args()
    uvicorn.run(
        "examples.webapp.app:create_app",
        factory=True,
        host=options.host,
        port=options.port,
        log_level="info",
    )


if __name__ == "__main__":
    main()
