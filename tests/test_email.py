"""send-email through a real SMTP server, retries by SMTP answer, and a global rate limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from aiosmtpd.controller import Controller

from csgoflip_jobs import JobQueue
from csgoflip_jobs.emails.errors import PermanentEmailError
from csgoflip_jobs.emails.sender import EmailService
from csgoflip_jobs.settings import Settings
from tests.support.polling import wait_for_state, wait_until
from tests.support.redis_servers import free_port
from tests.support.smtp_server import ScriptedHandler, start_smtp
from tests.support.workers import WorkerProcess

CONTEXT = {"username": "s1mple", "site_url": "https://csgoflip.example/<cases>"}


@pytest.fixture
def smtp() -> Iterator[tuple[ScriptedHandler, int]]:
    handler, port = ScriptedHandler(), free_port()
    controller: Controller = start_smtp(handler, port)
    yield handler, port
    controller.stop()


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "EMAIL_FROM": "CSGOFlip <no-reply@csgoflip.example>",
        **extra,
    }


def send_welcome(to: str, context: dict[str, str] = CONTEXT) -> str:
    """Enqueue the welcome email to ``to``; returns the job id."""
    return JobQueue("email").add(
        "send-email", {"to": to, "template": "welcome", "context": context}
    )


def test_a_real_smtp_server_receives_both_parts_with_the_right_headers(
    smtp: tuple[ScriptedHandler, int],
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    handler, port = smtp
    workers(queues="email", env=smtp_env(port))
    job_id = send_welcome("player@example.com")
    job = wait_for_state(JobQueue("email"), job_id, "completed", 15)
    [received] = handler.received
    message = received.message
    assert message["From"] == "CSGOFlip <no-reply@csgoflip.example>"
    assert message["To"] == "player@example.com"
    assert message["Subject"] == "Welcome to CSGOFlip, s1mple!"
    assert message["Message-ID"] == job.returnvalue
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "https://csgoflip.example/<cases>" in text.get_content()
    assert 'href="https://csgoflip.example/&lt;cases&gt;"' in html.get_content()  # autoescaped
    assert received.envelope_to == ["player@example.com"]


def test_451_twice_then_250_is_three_tries(
    smtp: tuple[ScriptedHandler, int],
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    handler, port = smtp
    handler.replies = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    workers(queues="email", env=smtp_env(port))
    job_id = send_welcome("player@example.com")
    job = wait_for_state(JobQueue("email"), job_id, "completed", 15)
    assert handler.attempts == 3 and len(handler.received) == 1
    assert job.attempts_made == 3


def test_550_is_tried_once(
    smtp: tuple[ScriptedHandler, int],
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    handler, port = smtp
    handler.replies = ["550 5.1.1 No such user"]
    workers(queues="email", env=smtp_env(port))
    job_id = send_welcome("nobody@example.com")
    job = wait_for_state(JobQueue("email"), job_id, "failed", 15)
    assert job.attempts_made == 1 and handler.attempts == 1
    assert "SMTP 550" in (job.failed_reason or "")


def test_bad_input_fails_at_once_without_touching_smtp(
    smtp: tuple[ScriptedHandler, int],
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    """A malformed address, and a CR/LF from a subject variable (header injection, which
    was retried three times), each fail on their first try."""
    handler, port = smtp
    workers(queues="email", env=smtp_env(port))
    malformed = send_welcome("not an address")
    injected = send_welcome(
        "player@example.com", {**CONTEXT, "username": "eve\r\nBcc: everyone@example.com"}
    )
    cases = [(malformed, "malformed email address"), (injected, "subject holds a line break")]
    for job_id, reason in cases:
        job = wait_for_state(JobQueue("email"), job_id, "failed", 15)
        assert job.attempts_made == 1 and reason in (job.failed_reason or ""), job_id
    assert handler.attempts == 0


def test_unknown_templates_and_missing_context_are_permanent() -> None:
    service = EmailService(Settings())
    with pytest.raises(PermanentEmailError, match="no-such-template"):
        service.render("a@example.com", "no-such-template", {})
    with pytest.raises(PermanentEmailError, match="username"):
        service.render("a@example.com", "welcome", {"site_url": "x"})


def test_two_workers_at_5_per_second_never_exceed_it_and_send_everything(
    smtp: tuple[ScriptedHandler, int],
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    handler, port = smtp
    env = smtp_env(port, EMAIL_RATE_LIMIT="5/s")
    workers(name="mail1", queues="email", env=env)
    workers(name="mail2", queues="email", env=env)
    jobs = [
        {
            "name": "send-email",
            "data": {"to": f"p{n}@example.com", "template": "welcome", "context": CONTEXT},
        }
        for n in range(20)
    ]
    ids = JobQueue("email").add_bulk(jobs)
    wait_until(lambda: len(handler.received) == 20, 30, interval=0.2)
    times = sorted(r.at for r in handler.received)
    # No six sends inside any one second (the sixth is at least 1 s after the first).
    gaps = [round(later - earlier, 3) for earlier, later in zip(times, times[5:], strict=False)]
    assert min(gaps) >= 1.0, gaps
    assert sorted(r.envelope_to[0] for r in handler.received) == sorted(
        f"p{n}@example.com" for n in range(20)
    )
    queue = JobQueue("email")
    assert all(wait_for_state(queue, i, "completed", 5).attempts_made == 1 for i in ids)
    assert times[-1] - times[0] < 6  # 20 at 5/s: about 4 s, not serialized far beyond


def test_a_slow_start_of_one_conversation_does_not_crowd_the_next_window(
    smtp: tuple[ScriptedHandler, int],
    workers: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    """The first connection's EHLO is answered 0.5 s late. With the slot taken before
    connecting, that message reached the server 0.5 s after its slot, and the next
    window's five came 0.55 s after it: six within a second at the server."""
    handler, port = smtp
    handler.ehlo_delays_s = [0.5]
    workers(name="mail1", queues="email", env=smtp_env(port, EMAIL_RATE_LIMIT="5/s"))
    jobs = [
        {
            "name": "send-email",
            "data": {"to": f"s{n}@example.com", "template": "welcome", "context": CONTEXT},
        }
        for n in range(10)
    ]
    JobQueue("email").add_bulk(jobs)
    wait_until(lambda: len(handler.received) == 10, 30, interval=0.2)
    times = sorted(r.at for r in handler.received)
    gaps = [round(later - earlier, 3) for earlier, later in zip(times, times[5:], strict=False)]
    assert min(gaps) >= 1.0, gaps
