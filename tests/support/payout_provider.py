"""A payment provider's HTTP API on 127.0.0.1, answering each payout as scripted."""

from __future__ import annotations

import json
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.http_servers import serving


@dataclass(frozen=True)
class Answer:
    """One scripted answer: ``status`` with ``body`` (bytes as sent; None: the provider's
    own payout JSON), after ``delay_s``; ``drop`` closes the connection unanswered once
    the request was read."""

    status: int = 201
    body: bytes | None = None
    content_type: str = "application/json"
    delay_s: float = 0.0
    drop: bool = False


class Provider(ThreadingHTTPServer):
    """Dedupes payouts by Idempotency-Key; answers ``answers`` in turn, then 201 with the
    payout. Every request is kept in ``requests``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProviderHandler)
        self.answers: list[int | Answer] = []
        self.payouts: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self.always: Answer | None = None
        """When set, the answer to every request once ``answers`` is used up."""

    @property
    def url(self) -> str:
        """The payouts endpoint."""
        return f"http://127.0.0.1:{self.server_address[1]}/payouts"

    def next_answer(self) -> Answer:
        """The answer to give now."""
        if self.answers:
            answer = self.answers.pop(0)
            return answer if isinstance(answer, Answer) else Answer(answer)
        return self.always or Answer(201)


class ProviderHandler(BaseHTTPRequestHandler):
    server: Provider

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        self.server.requests.append({"key": key, **body})
        answer = self.server.next_answer()
        delay_s = answer.delay_s or self.server.delay_s
        if delay_s:
            threading.Event().wait(delay_s)
        if answer.drop:
            self.close_connection = True
            self.connection.close()
            return
        if answer.body is not None:
            self._send(answer.status, answer.body, answer.content_type)
        elif answer.status in (200, 201):
            payout = self.server.payouts.setdefault(key, {"id": f"po_{len(self.server.payouts)}"})
            self._send(answer.status, json.dumps(payout).encode())
        else:
            self._send(answer.status, json.dumps({"error": "scripted"}).encode())

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/elsewhere")
        if status != 204:  # a 204 carries no body, nor a length
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def running_provider() -> AbstractContextManager[Provider]:
    """A provider serving on a thread until the block ends."""
    return serving(Provider())
