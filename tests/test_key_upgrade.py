"""Jobs an earlier version left in Redis keep working after the upgrade to per-queue ids.

The data is what the code of commit 6fa4db6 left in a private Redis (see
tests/support/legacy_layout.py): jobs waiting, delayed, running (its worker killed),
retained completed and failed ones, a retry waiting its backoff. A worker of today
moves their records before it takes a message; then every job goes on as it would
have, none is lost and none completes twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
from click.testing import CliRunner

from csgoflip_jobs import JobQueue, app, keys
from csgoflip_jobs.engine.upgrade import upgrade_job_keys
from csgoflip_jobs.ops.cli import main
from tests.support.legacy_layout import load_legacy_layout
from tests.support.polling import wait_for_state
from tests.support.workers import WorkerProcess

QUEUE_OF = {"order:1": "payment", "long:1": "payment", "later:1": "payment",
            "done:1": "notification", "logged:1": "email", "bad:1": "email",
            "flaky:1": "email"}  # fmt: skip


def legacy_keys(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match="csgoflip:job*", count=1000))


def test_a_worker_moves_the_legacy_jobs_and_each_goes_on_once(
    redis_client: redis.Redis,
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
) -> None:
    jobs = load_legacy_layout(redis_client)
    assert len(legacy_keys(redis_client)) == 10  # 9 records and 1 job's logs
    payment, notification, email = (JobQueue(q) for q in ("payment", "notification", "email"))
    worker = workers(env={"VISIBILITY_TIMEOUT_S": "5"})
    assert "moved 9 job records to their queues' keys" in worker.log()
    assert legacy_keys(redis_client) == []
    assert redis_client.get(keys.LAYOUT_KEY) == keys.LAYOUT_VERSION.encode()
    order, waiting_uuid = jobs["waiting"]
    wait_for_state(payment, order, "completed", 20)
    wait_for_state(notification, waiting_uuid, "completed", 20)
    # The job whose worker was killed comes back through the visibility sweep.
    long = wait_for_state(payment, jobs["active"][0], "completed", 40)
    assert long.stalled == 1 and long.returnvalue == "slept"
    later, flaky = jobs["delayed"][0], jobs["retry_delayed"][0]
    assert payment.get_job(later).state == "delayed"  # type: ignore[union-attr]
    assert email.get_job(flaky).state == "delayed"  # type: ignore[union-attr]
    assert payment.promote(later) and email.promote(flaky)
    assert wait_for_state(payment, later, "completed", 20).returnvalue == {"n": 6}
    retried = wait_for_state(email, flaky, "completed", 20)
    assert (retried.attempt, retried.attempts_made) == (2, 2)
    # What had finished before the upgrade is still kept, with its result and logs.
    done = {job.id: job.returnvalue for job in notification.get_completed()}
    assert done[jobs["completed"][0]] == {"n": 1} and done[jobs["completed"][1]] == {"n": 2}
    assert email.get_job_logs("logged:1") == ["step 1 of 2", "step 2 of 2"]
    assert [job.id for job in email.get_failed()] == ["bad:1"]
    assert app.AsyncResult("done:1").get(timeout=5) == {"n": 1}
    # Every job ran to its end once (the killed one started twice: before and after).
    ended = Counter(r["id"] for r in runs() if r.get("phase") != "start")
    for job_id in ["order:1", waiting_uuid, later, "done:1", jobs["completed"][1]]:
        assert ended[job_id] == 1, (job_id, ended)
    assert Counter(r["id"] for r in runs() if r.get("phase") == "start")["long:1"] == 2
    for job_id, queue in QUEUE_OF.items():
        assert redis_client.exists(keys.job_key(queue, job_id)), job_id


def test_an_id_taken_meanwhile_is_left_and_reported(redis_client: redis.Redis) -> None:
    load_legacy_layout(redis_client)
    JobQueue("payment").add("test-record", {"new": True}, job_id="order:1")
    redis_client.hset(f"{keys.LEGACY_JOB_KEY_PREFIX}nameless", "state", "waiting")
    result = CliRunner().invoke(main, ["upgrade-keys"])
    assert result.exit_code == 1, result.output
    assert "moved 8 job records" in result.output
    assert "left order:1: its queue has a job of that id already" in result.output
    assert "left nameless: its record names no queue" in result.output
    assert JobQueue("payment").get_job("order:1").data == {"new": True}  # type: ignore[union-attr]
    assert redis_client.get(keys.LAYOUT_KEY) is None  # not done: workers look again
    again = upgrade_job_keys(redis_client)  # nothing more to move; safe to run again
    assert (again.moved, again.taken, again.lost) == (0, ["order:1"], ["nameless"])
    record = redis_client.hgetall(f"{keys.LEGACY_JOB_KEY_PREFIX}order:1")
    assert json.loads(record[b"data"]) == {"n": 4}  # the old one, left for an operator
