"""Canary for csgoflip_jobs/engine/celery_ext: every private kombu, Celery or Flower name
the platform touches still exists as relied on, and the README lists exactly those."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis

from csgoflip_jobs.engine.celery_ext.audit import USES, PrivateUse
from csgoflip_jobs.engine.celery_ext.transport import Transport, install_transport
from csgoflip_jobs.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "csgoflip_jobs/engine/celery_ext/README.md"


def owner_of(use: PrivateUse) -> Any:
    module, _, attribute = use.owner.partition(":")
    found = importlib.import_module(module)
    return getattr(found, attribute) if attribute else found


@pytest.fixture
def live_channel(redis_url: str, redis_client: redis.Redis) -> Any:
    """A channel of the platform's transport on the test Redis."""
    with kombu.Connection(redis_url, transport=Transport) as connection:
        channel = connection.channel()
        try:
            yield channel
        finally:
            channel.close()


@pytest.mark.parametrize("use", USES, ids=lambda u: f"{u.owner}.{u.name}")
def test_every_private_name_is_still_there(use: PrivateUse, live_channel: Any) -> None:
    owner = owner_of(use)
    if use.anchors:  # a template of the owner package
        source = (Path(owner.__file__).parent / use.name).read_text()
        missing = [anchor for anchor in use.anchors if anchor not in source]
        assert not missing, f"{use.owner}'s {use.name} no longer has {missing}"
        return
    if use.on_instance:
        holder = live_channel.qos if use.owner.endswith(":QoS") else live_channel
        assert hasattr(holder, use.name), f"{use.owner} instances no longer have {use.name}"
        return
    assert hasattr(owner, use.name), f"{use.owner} no longer has {use.name}"
    if use.params:
        parameters = inspect.signature(getattr(owner, use.name)).parameters
        missing = [p for p in use.params if p not in parameters]
        assert not missing, f"{use.owner}.{use.name} lost parameters {missing}"


def test_the_readme_lists_exactly_the_audited_names() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", README.read_text(), re.MULTILINE)
    assert sorted(rows) == sorted((u.owner, u.name) for u in USES)


def test_global_keyprefix_is_refused_with_a_clear_error(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """kombu's global_keyprefix would split a queue between prefixed and unprefixed keys
    (the scripts name their keys themselves): refused at start-up, and by the channel."""
    with pytest.raises(ConfigError, match="global_keyprefix is not supported"):
        install_transport({"global_keyprefix": "app1:"})
    options = {"global_keyprefix": "app1:"}
    with (
        kombu.Connection(redis_url, transport=Transport, transport_options=options) as conn,
        pytest.raises(ConfigError, match="global_keyprefix"),
    ):
        conn.channel()
