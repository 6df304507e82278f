"""Lua scripts that move jobs between states atomically.

Each script is one round trip and one atomic step, so no crash between two
commands can lose or duplicate a job. Keys other than KEYS[] are touched
(job hashes, Celery result keys): the platform targets a single Redis node,
not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

# KEYS: job hash, target list, delayed zset, wake list
# ARGV: payload, delay ms, is_retry (1/0), job id, then field/value pairs for the job hash
# Returns 1 when queued, 0 when a job with this id already exists (dedupe).
ENQUEUE = """
local job, list, delayed, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local payload, delay, retry, id = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
if not retry and redis.call('EXISTS', job) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not retry then
  redis.call('HSET', job, 'timestamp', now)
end
if #ARGV >= 5 then
  redis.call('HSET', job, unpack(ARGV, 5))
end
if delay > 0 then
  redis.call('HSET', job, 'state', 'delayed', 'msg', payload, 'msg_list', list,
             'due', now + delay)
  redis.call('ZADD', delayed, now + delay, id)
  redis.call('LPUSH', wake, '1')
  redis.call('LTRIM', wake, 0, 0)
else
  redis.call('HSET', job, 'state', 'waiting')
  redis.call('LPUSH', list, payload)
end
return 1
"""

# KEYS: delayed zset, wake list
# ARGV: job key prefix, batch size
# Moves every due job's message onto its list; returns {moved, ms until the next is due or -1}.
PROMOTE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local job = ARGV[1] .. id
  local found = redis.call('HMGET', job, 'msg', 'msg_list')
  if found[1] then
    redis.call('LPUSH', found[2], found[1])
    redis.call('HDEL', job, 'msg', 'msg_list', 'due')
    redis.call('HSET', job, 'state', 'waiting')
  end
  redis.call('ZREM', KEYS[1], id)
end
redis.call('DEL', KEYS[2])
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then
  return {#ids, math.max(0, tonumber(nxt[2]) - now)}
end
return {#ids, -1}
"""

# KEYS: job hash, active set
# ARGV: job id, attempt (1-based), task name, queue
# Returns 1 to run the job, 0 when this delivery is stale: the job already
# finished, or a later try of it is already scheduled.
START = """
local state, attempt = unpack(redis.call('HMGET', KEYS[1], 'state', 'attempt'))
if state == 'completed' or state == 'failed' then
  return 0
end
if attempt and tonumber(attempt) > tonumber(ARGV[2]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'state', 'active', 'processed_on', now, 'attempt', ARGV[2],
           'name', ARGV[3], 'queue', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: job hash, active set, finished zset (completed or failed), Celery result key
# ARGV: 1 outcome (completed|failed|retry), 2 encoded Celery meta, 3 job id,
#       4 attempts made, 5 return value JSON or failed reason, 6 stack trace,
#       7 default number kept, 8 job key prefix, 9 Celery result key prefix
# Stores the result, records the outcome, and trims the finished set to the
# newest N, deleting the job hashes and Celery results of what it trims.
FINISH = """
local job, active, finished, result_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outcome, meta, id = ARGV[1], ARGV[2], ARGV[3]
local state = redis.call('HGET', job, 'state')
if state == 'completed' or state == 'failed' then
  return 0
end
redis.call('SREM', active, id)
redis.call('SET', result_key, meta)
redis.call('PUBLISH', result_key, meta)
if outcome == 'retry' then
  redis.call('HSET', job, 'attempts_made', ARGV[4], 'failed_reason', ARGV[5],
             'stacktrace', ARGV[6])
  return 1
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', job, 'state', outcome, 'finished_on', now_ms, 'attempts_made', ARGV[4])
if outcome == 'completed' then
  redis.call('HSET', job, 'returnvalue', ARGV[5])
  redis.call('HDEL', job, 'failed_reason', 'stacktrace')
else
  redis.call('HSET', job, 'failed_reason', ARGV[5], 'stacktrace', ARGV[6])
end
local keep = redis.call('HGET', job, outcome == 'completed' and 'remove_on_complete'
                                                           or 'remove_on_fail')
if keep == 'true' then
  redis.call('DEL', job, result_key)
  return 1
end
redis.call('ZADD', finished, now_us, id)
if keep == 'false' then
  return 1
end
local n = tonumber(keep) or tonumber(ARGV[7])
local extra = redis.call('ZCARD', finished) - n
if extra > 0 then
  local old = redis.call('ZRANGE', finished, 0, extra - 1)
  for _, old_id in ipairs(old) do
    redis.call('DEL', ARGV[8] .. old_id, ARGV[9] .. old_id)
  end
  redis.call('ZREMRANGEBYRANK', finished, 0, extra - 1)
end
return 1
"""


# Script objects only hash their source with this client's encoding; every call
# passes the client to run on, so this one never connects. In pipelines use
# :func:`run_pipeline`: redis-py's own pipeline support for scripts costs an
# extra SCRIPT EXISTS round trip on every execute.
_ENCODING_ONLY = redis.Redis()

enqueue = Script(_ENCODING_ONLY, ENQUEUE)
promote = Script(_ENCODING_ONLY, PROMOTE)
start = Script(_ENCODING_ONLY, START)
finish = Script(_ENCODING_ONLY, FINISH)

ALL_SCRIPTS = (enqueue, promote, start, finish)


def queue_script(
    pipe: redis.client.Pipeline, script: Script, keys: list[Any], args: list[Any]
) -> None:
    """Add an EVALSHA of ``script`` to ``pipe`` without redis-py's per-execute check."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def run_pipeline(
    client: redis.Redis, calls: list[Callable[[redis.client.Pipeline], None]]
) -> list[Any]:
    """Run ``calls`` in one round trip; on a server that lost its scripts, load them and
    re-run only the calls that failed with NOSCRIPT (they changed nothing)."""
    replies = _execute(client, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in ALL_SCRIPTS:
            client.script_load(script.script)
        for index, reply in zip(
            missing, _execute(client, [calls[i] for i in missing]), strict=True
        ):
            replies[index] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _execute(
    client: redis.Redis, calls: list[Callable[[redis.client.Pipeline], None]]
) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for call in calls:
            call(pipe)
        return list(pipe.execute(raise_on_error=False))
