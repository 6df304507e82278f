"""Tasks that exist only for the tests; workers load them with ``-I tests.support.jobs``.

Each records what it did in Redis so the test process can check it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from typing import Any

from csgoflip_jobs import UnrecoverableError, app
from csgoflip_jobs.helpers.connection import broker_client

RUNS_KEY = "test:runs"
"""List of JSON records, one per try that started: job id, name, data, attempt, time."""

RUN_IDS_KEY = "test:run-ids"
"""Set of the ids of the records in RUNS_KEY, so a record is pushed once per try."""

# redis-py re-sends a command whose reply was lost (e.g. Redis shut down after
# running it): a plain RPUSH could then record one try twice.
_RECORD_ONCE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[1], ARGV[2])
end
"""


def _record(task: Any, **extra: Any) -> None:
    header = getattr(task.request, "bullmq", None) or {}
    entry = {
        "id": task.job_id,
        "name": task.name,
        "attempt": header.get("attempt", 1),
        "at": time.time(),
        "pid": os.getpid(),
        "run": uuid.uuid4().hex,
        **extra,
    }
    client = broker_client()
    client.eval(_RECORD_ONCE, 2, RUNS_KEY, RUN_IDS_KEY, entry["run"], json.dumps(entry))


@app.task(name="test-record", bind=True)
def record(self: Any, **data: Any) -> dict[str, Any]:
    """Record the run and return the data."""
    _record(self, data=data)
    return data


@app.task(name="test-flaky", bind=True)
def flaky(self: Any, succeed_on: int = 99, **data: Any) -> str:
    """Fail every try before ``succeed_on``."""
    _record(self, data=data)
    header = getattr(self.request, "bullmq", None) or {}
    if header.get("attempt", 1) < succeed_on:
        raise RuntimeError(f"flaky failure on try {header.get('attempt', 1)}")
    return "ok"


@app.task(name="test-unrecoverable", bind=True)
def unrecoverable(self: Any, **data: Any) -> None:
    """Fail with UnrecoverableError."""
    _record(self, data=data)
    raise UnrecoverableError("this job can never succeed")


@app.task(name="test-sleep", bind=True)
def sleep(self: Any, seconds: float = 1.0) -> str:
    """Record the start, sleep, then record the end."""
    data: dict[str, Any] = {}
    _record(self, data=data, phase="start")
    time.sleep(seconds)
    _record(self, data=data, phase="end")
    return "slept"


@app.task(name="test-progress", bind=True)
def progress(self: Any, steps: int = 2) -> str:
    """Report progress and log a line per step, then finish."""
    for step in range(1, steps + 1):
        self.log(f"step {step} of {steps}")
        self.update_progress({"step": step, "of": steps})
    self.update_progress(100)
    return "done"


@app.task(name="test-crash", bind=True)
def crash(self: Any, **data: Any) -> None:
    """Record the run, then kill this worker process (as an OOM kill or a segfault would)."""
    _record(self, data=data)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="test-celery-retry", bind=True)
def celery_retry(self: Any, succeed_after: int = 2, countdown: float = 1.0) -> str:
    """Celery's own pattern: ``raise self.retry(countdown=...)`` until it succeeds."""
    _record(self, data={"retries": self.request.retries})
    if self.request.retries < succeed_after:
        raise self.retry(countdown=countdown)
    return "ok"


@app.task(
    name="test-autoretry",
    bind=True,
    autoretry_for=(RuntimeError,),
    retry_kwargs={"countdown": 0.3, "max_retries": 1},
)
def autoretry(self: Any) -> None:
    """Always fails; Celery's autoretry_for retries it (max_retries 1)."""
    _record(self, data={"retries": self.request.retries})
    raise RuntimeError("always fails")


FAIL_FLAG_KEY = "test:fail-flag"
"""While this key exists, test-fail-while-flagged fails (the Jobs board's retry tests)."""


@app.task(name="test-fail-while-flagged", bind=True)
def fail_while_flagged(self: Any, **data: Any) -> str:
    """Fail with a two-line reason while FAIL_FLAG_KEY exists, else succeed."""
    _record(self, data=data)
    if broker_client().exists(FAIL_FLAG_KEY):
        raise RuntimeError("payout provider said no\n(second line of the reason)")
    return "ok"


DEFER_FLAG_KEY = "test:deferred"
"""Set by ``test-defer-once`` when it deferred its job."""


@app.task(name="test-defer-once", bind=True)
def defer_once(self: Any, delay_ms: int = 1000) -> str:
    """Defer the job once by ``delay_ms`` (the same try, as a new message), then record
    the run and succeed."""
    if broker_client().set(DEFER_FLAG_KEY, 1, nx=True):
        self.defer(delay_ms)
    _record(self)
    return "ok"


@app.task(name="test-record-file", bind=True)
def record_file(self: Any, n: int, log: str) -> int:
    """Append the run to the file ``log`` (one JSON line: job id, ``n``, time, pid): a
    record outside Redis, which survives whatever a failover loses."""
    line = json.dumps({"id": self.job_id, "n": n, "at": time.time(), "pid": os.getpid()})
    # One write of a short line with O_APPEND: lines of concurrent runs never interleave.
    with open(log, "a") as out:
        out.write(line + "\n")
    return n


@app.task(name="test-log-lines", bind=True)
def log_lines(self: Any, lines: int, chars: int) -> int:
    """Log ``lines`` lines of ``chars`` characters each (numbered); the lines kept."""
    kept = 0
    for n in range(lines):
        kept = self.log(f"{n:06d} " + "x" * max(0, chars - 7))
    return kept


@app.task(name="test-headers", bind=True)
def headers(self: Any, **data: Any) -> dict[str, Any]:
    """What the try sees of its message: a header a publish hook added, its ids."""
    return {"tenant": getattr(self.request, "tenant", None), "job_id": self.job_id,
            "task_id": self.request.id, "data": data}  # fmt: skip


ERRBACKS_KEY = "test:errbacks"
"""List of JSON records, one per errback run: the failed task's id and error."""


@app.task(name="test-errback")
def errback(request: Any, exc: BaseException, traceback: Any) -> None:
    """A new-style errback (Celery calls it with the failed task's request): records
    which task failed, with what."""
    entry = {"task_id": request.id, "error": repr(exc), "at": time.time()}
    broker_client().rpush(ERRBACKS_KEY, json.dumps(entry))


@app.task(name="test-retry-rebinding", bind=True)
def retry_rebinding(self: Any, foo: str, bar: str = "unset") -> list[str]:
    """First try: ``self.retry(kwargs={"foo": "new"})``; Celery rebinds the call, so
    the second sees ``foo`` from those kwargs and ``bar`` from the first arguments."""
    if not self.request.retries:
        raise self.retry(kwargs={"foo": "new"}, countdown=0)
    return [foo, bar]


@app.task(name="test-retry-once-headers", bind=True)
def retry_once_headers(self: Any) -> dict[str, Any]:
    """Retried once; the retry returns the custom headers it was sent with."""
    if not self.request.retries:
        raise self.retry(countdown=0)
    return {name: value for name, value in (self.request.headers or {}).items()
            if name != "bullmq"}  # fmt: skip


@app.task(name="test-replace-with-record", bind=True)
def replace_with_record(self: Any, n: int) -> Any:
    """Replaced by ``test-record(n=n)`` on this queue: the replacement's result is this
    task's."""
    return self.replace(record.si(n=n).set(queue=_this_queue(self)))


@app.task(name="test-replace-with-chain", bind=True)
def replace_with_chain(self: Any, n: int) -> Any:
    """Replaced by a chain of two ``test-record``: the chain's last task takes this
    task's id (and finishes it)."""
    queue = _this_queue(self)
    return self.replace(record.si(n=n).set(queue=queue) | record.si(n=n + 1).set(queue=queue))


def _this_queue(task: Any) -> str:
    return str(task.request.delivery_info["routing_key"])


@app.task(name="test-untyped", typing=False)
def untyped(n: int) -> int:
    """Not checked at enqueue (``typing=False``): wrong arguments fail when it runs."""
    return n


@app.task(name="test-ids", bind=True)
def ids(self: Any) -> list[str | None]:
    """The try's own, parent and root task ids."""
    return [self.request.id, self.request.parent_id, self.request.root_id]


@app.task(name="test-add")
def add(x: int, y: int = 0) -> int:
    """x + y (canvas tests)."""
    return x + y


@app.task(name="test-fail")
def fail(*args: Any) -> None:
    """Always fails (canvas tests)."""
    raise ValueError("expected failure")


@app.task(name="test-tsum")
def tsum(numbers: list[int]) -> int:
    """The sum of a chord header's results."""
    return sum(numbers)
