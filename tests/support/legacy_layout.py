"""Put back into a Redis what an earlier version of the platform left there.

``tests/fixtures/legacy-layout.json`` was dumped (every key, its type and value) from a
private Redis used by the code of commit 6fa4db6, the last with one key space for the
jobs of every queue (``csgoflip:job:<id>``): jobs completed, failed (with logs), one
retry waiting a 1 h backoff, waiting ones, one delayed by 1 h, and one running when its
worker was killed -9. Loading it shifts the delayed jobs' due times by the time since
the dump, so they are still an hour away.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import redis

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "legacy-layout.json"


def _raw(value: dict[str, str]) -> bytes:
    return value["s"].encode() if "s" in value else base64.b64decode(value["b64"])


def load_legacy_layout(client: redis.Redis) -> dict[str, list[str]]:
    """Write the fixture's keys into ``client``'s database; the job ids by what they were
    doing at the dump (completed, failed, retry_delayed, active, waiting, delayed)."""
    dump: dict[str, Any] = json.loads(FIXTURE.read_text())
    seconds, micros = client.time()
    shift_ms = seconds * 1000 + micros // 1000 - int(dump["dumped_at_ms"])
    for key, entry in dump["keys"].items():
        kind, value = entry["type"], entry["value"]
        if kind == "string":
            client.set(key, _raw(value))
        elif kind == "hash":
            fields = {_raw(f): _raw(v) for f, v in value}
            if b"due" in fields:
                fields[b"due"] = str(int(fields[b"due"]) + shift_ms).encode()
            client.hset(key, mapping=fields)  # type: ignore[arg-type]
        elif kind == "list":
            client.rpush(key, *[_raw(item) for item in value])
        elif kind == "set":
            client.sadd(key, *[_raw(item) for item in value])
        elif kind == "zset":
            due = key.endswith(":delayed")
            client.zadd(key, {_raw(m): s + shift_ms if due else s for m, s in value})
        elif kind == "stream":
            for entry_id, fields in value:
                client.xadd(key, {_raw(f): _raw(v) for f, v in fields}, id=entry_id)
    jobs: dict[str, list[str]] = dump["jobs"]
    return jobs
