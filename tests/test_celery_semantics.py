"""Celery's own semantics on the platform, as Celery's integration suite checks them:
``apply()``, errbacks after the last try, Celery-style queues, retry arguments and
headers, ``self.replace`` and task ids sent again. Real workers, real Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import chain, chord, group, states
from celery.exceptions import ChordError

from csgoflip_jobs import JobQueue, app, keys
from csgoflip_jobs.engine.celery_ext.result_backend import UNHELD_RESULT_EXPIRES_S
from tests.support import jobs
from tests.support.polling import wait_for_state, wait_until
from tests.support.workers import WorkerProcess

WITH_CELERY_QUEUE = "notification,celery"


def errbacks_of(client: redis.Redis, task_id: str) -> list[dict[str, Any]]:
    entries = [json.loads(item) for item in client.lrange(jobs.ERRBACKS_KEY, 0, -1)]
    return [entry for entry in entries if entry["task_id"] == task_id]


def test_apply_runs_the_body_here_with_retries_and_errbacks(redis_client: redis.Redis) -> None:
    done = jobs.record.apply(kwargs={"n": 1})
    assert (done.state, done.get()) == (states.SUCCESS, {"n": 1})
    own = jobs.ids.apply()
    assert own.get() == [own.id, None, own.id]

    retried = jobs.celery_retry.apply(kwargs={"succeed_after": 1, "countdown": 0})
    assert (retried.state, retried.get()) == (states.SUCCESS, "ok")

    failed = jobs.unrecoverable.apply(link_error=jobs.errback.s())
    assert failed.state == states.FAILURE
    assert [e["error"] for e in errbacks_of(redis_client, failed.id)] == [
        "UnrecoverableError('this job can never succeed')"
    ]


def test_errbacks_run_once_after_the_last_try(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    workers()
    sent = jobs.flaky.apply_async(
        kwargs={"succeed_on": 99}, queue="notification", link_error=jobs.errback.s()
    )
    wait_for_state(JobQueue("notification"), sent.id, "failed", 15)
    wait_until(lambda: errbacks_of(redis_client, sent.id), 5)
    time.sleep(0.5)  # a second errback would have been sent with the first
    tries = [run for run in runs() if run["id"] == sent.id]
    called = errbacks_of(redis_client, sent.id)
    assert [t["attempt"] for t in tries] == [1, 2, 3]
    assert len(called) == 1
    assert called[0]["at"] >= tries[-1]["at"]
    assert "flaky failure on try 3" in called[0]["error"]


def test_an_exception_on_a_celery_style_queue_fails_the_task_at_once(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    workers(queues=WITH_CELERY_QUEUE)
    sent = jobs.flaky.apply_async(
        kwargs={"succeed_on": 2}, queue="celery", link_error=jobs.errback.s()
    )
    sent.get(timeout=10, propagate=False)
    assert sent.state == states.FAILURE
    assert [run["attempt"] for run in runs() if run["id"] == sent.id] == [1]
    wait_until(lambda: errbacks_of(redis_client, sent.id), 5)
    # self.retry still tries again there, up to max_retries.
    retried = jobs.celery_retry.apply_async(
        kwargs={"succeed_after": 2, "countdown": 0.1}, queue="celery"
    )
    assert retried.get(timeout=10) == "ok"
    assert len([run for run in runs() if run["id"] == retried.id]) == 3
    # Wrong arguments of a task not checked at enqueue fail with Celery's TypeError.
    untyped = jobs.untyped.apply_async(kwargs={"wrong": 5}, queue="celery")
    with pytest.raises(TypeError):
        untyped.get(timeout=10)


def test_retry_rebinds_new_kwargs_onto_the_first_args_and_keeps_headers(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    workers()
    rebound = jobs.retry_rebinding.apply_async(args=("old", "kept"), queue="notification")
    assert rebound.get(timeout=10) == ["new", "kept"]

    headed = jobs.retry_once_headers.apply_async(
        headers={"x-test-header": "test-value"}, queue="notification"
    )
    assert headed.get(timeout=10) == {"x-test-header": "test-value"}

    quiet = jobs.celery_retry.apply_async(
        kwargs={"succeed_after": 1, "countdown": 0}, queue="notification", ignore_result=True
    )
    wait_for_state(JobQueue("notification"), quiet.id, "completed", 10)
    assert len([run for run in runs() if run["id"] == quiet.id]) == 2
    assert not redis_client.exists(keys.result_key(quiet.id))


def test_replace_hands_the_task_id_to_the_replacement(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers()
    queue = JobQueue("notification")
    single = jobs.replace_with_record.apply_async(kwargs={"n": 5}, queue="notification")
    assert single.get(timeout=10) == {"n": 5}
    assert wait_for_state(queue, single.id, "completed", 5).name == "test-record"

    chained = jobs.replace_with_chain.apply_async(kwargs={"n": 7}, queue="notification")
    assert chained.get(timeout=10) == {"n": 8}
    assert queue.get_active() == []


def test_a_task_id_sent_again_runs_again_once_its_job_finished(
    workers: Callable[..., WorkerProcess],
    runs: Callable[[], list[dict[str, Any]]],
    redis_client: redis.Redis,
) -> None:
    queue = JobQueue("notification")
    # Sent twice while the first is still waiting: one job (a publish sent twice).
    for n in (1, 2):
        jobs.record.apply_async(kwargs={"n": n}, task_id="resent", queue="notification")
    assert queue.get_job_counts()["waiting"] == 1
    # Its own job id: one job, however often it is added, finished or not.
    own = queue.add("test-record", {"n": 3}, job_id="own")
    workers()
    wait_for_state(queue, "resent", "completed", 10)
    wait_for_state(queue, own, "completed", 10)
    assert queue.add("test-record", {"n": 4}, job_id="own") == own

    jobs.record.apply_async(kwargs={"n": 5}, task_id="resent", queue="notification")
    wait_until(lambda: len([r for r in runs() if r["id"] == "resent"]) == 2, 10)
    job = wait_for_state(queue, "resent", "completed", 10)
    assert job.data == {"n": 5}
    assert sorted(run["data"]["n"] for run in runs()) == [1, 3, 5]
    assert [j.id for j in queue.get_completed()].count("resent") == 1


def test_a_revoke_marks_a_task_no_job_holds_and_leaves_one_started_elsewhere(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers()
    backend = app.backend
    started, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    backend.store_result(started, {"hostname": "other@host"}, states.STARTED)
    assert app.control.revoke([started, unknown], reply=True, timeout=10, limit=1)
    assert backend.get_state(started) == states.STARTED
    assert backend.get_state(unknown) == states.REVOKED
    # No retention set trims it: it expires.
    assert 0 < redis_client.ttl(keys.result_key(unknown)) <= UNHELD_RESULT_EXPIRES_S


def test_a_failed_chord_header_fails_the_chords_chained_after_it(
    workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers(queues=WITH_CELERY_QUEUE)
    on = {"queue": "celery"}
    first = chord([jobs.add.s(1, 1).set(**on), jobs.fail.s().set(**on)], jobs.tsum.s().set(**on))
    then = chord([jobs.add.s(1).set(**on), jobs.add.s(2).set(**on)], jobs.tsum.s().set(**on))
    sent = group(chain(first, then), jobs.add.s(1, 1).set(**on)).apply_async()
    # The second chord's body was never sent: Celery fails it on the first's behalf,
    # and a group waiting on it hears that at once.
    with pytest.raises(ChordError):
        sent.get(timeout=10)
    assert sent.results[0].state == states.FAILURE
    assert 0 < redis_client.ttl(keys.result_key(sent.results[0].id)) <= UNHELD_RESULT_EXPIRES_S
