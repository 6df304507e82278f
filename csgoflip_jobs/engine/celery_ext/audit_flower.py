"""The Flower rows of the audit (:mod:`.audit` lists them all), and the row type."""

from __future__ import annotations

from dataclasses import dataclass

from csgoflip_jobs.engine.celery_ext.flower_templates import AMENDMENTS


@dataclass(frozen=True)
class PrivateUse:
    """One touch of a library's private name."""

    owner: str
    """``module:Class`` (or ``module`` for a module attribute)."""
    name: str
    how: str
    """override, call, read, write or replace."""
    where: str
    """The module of ours that does it (under csgoflip_jobs/engine/celery_ext/)."""
    why: str
    params: tuple[str, ...] = ()
    """For an override: parameters of the library's method that ours relies on."""
    on_instance: bool = False
    """Set in ``__init__`` rather than on the class: checked on a live channel."""
    anchors: tuple[str, ...] = ()
    """For a template (``name`` a path inside the owner package): texts of it ours relies
    on, checked to be in the installed file."""


_OPTIONS = "flower.options:default_options"
_HANDLER = "flower.views:BaseHandler"


def _anchors(template: str) -> tuple[str, ...]:
    return tuple(a.anchor for a in AMENDMENTS if a.template == template)


FLOWER_USES: tuple[PrivateUse, ...] = (
    PrivateUse(
        "flower.utils.broker",
        "RedisSentinel",
        "replace",
        "flower",
        "the Broker page asks every sentinel (Flower's reader asks only the first)",
    ),
    PrivateUse(
        "flower.utils.broker:RedisSentinel",
        "_get_redis_client",
        "override",
        "flower",
        "one platform Sentinel client per process instead of one per page view",
        ("broker_options", "broker_use_ssl"),
    ),
    PrivateUse(
        "flower.views.monitor:Metrics",
        "get",
        "replace",
        "flower",
        "put Flower's authentication on /metrics; read the queues before each scrape",
    ),
    PrivateUse(_OPTIONS, "basic_auth", "write", "flower", "FLOWER_USER / FLOWER_PASSWORD"),
    PrivateUse(_OPTIONS, "max_tasks", "write", "flower", "FLOWER_MAX_TASKS tasks in memory"),
    PrivateUse(
        _OPTIONS,
        "purge_offline_workers",
        "write",
        "flower",
        "offline workers dropped after FLOWER_PURGE_OFFLINE_WORKERS_S",
    ),
    PrivateUse(_OPTIONS, "read_only", "read", "flower_jobs", "no Jobs actions when read-only"),
    PrivateUse(
        "flower.urls", "handlers", "write", "flower", "the Jobs routes, before Flower's catch-all"
    ),
    PrivateUse(
        "flower.urls",
        "settings",
        "write",
        "flower",
        "template_loader: every page from the amended templates (read from template_path)",
    ),
    PrivateUse(
        "flower.views",
        "BaseHandler",
        "subclass",
        "flower_jobs",
        "the Jobs pages get Flower's login, error pages and template values",
    ),
    PrivateUse(
        _HANDLER,
        "check_xsrf_cookie",
        "override",
        "flower_jobs",
        "Flower's cross-site checks, then the anti-forgery token always",
    ),
    PrivateUse(_HANDLER, "write_error", "override", "flower_jobs", "the JSON API's errors as JSON"),
    PrivateUse(
        _HANDLER, "render", "call", "flower_jobs", "Flower's url_prefix and helpers in our pages"
    ),
    PrivateUse(
        "flower",
        "templates/navbar.html",
        "amend",
        "flower_templates",
        "a Jobs link after the Broker link",
        anchors=_anchors("navbar.html"),
    ),
    PrivateUse(
        "flower",
        "templates/broker.html",
        "amend",
        "flower_templates",
        "the depths labelled waiting only, pointing to the Jobs page",
        anchors=_anchors("broker.html"),
    ),
    PrivateUse(
        "flower",
        "templates/base.html",
        "extend",
        "templates/jobs*.html",
        "the Jobs pages in Flower's frame",
        anchors=(
            "{% block title %}",
            "{% block navbar %}",
            "{% block container %}",
            "{% block extra_scripts %}",
        ),
    ),
    PrivateUse(
        "flower",
        "templates/404.html",
        "render",
        "flower_jobs",
        "a 404 names the unknown queue, state or job (Flower's write_error)",
        anchors=("{{ message }}",),
    ),
    PrivateUse(
        _HANDLER,
        "get_current_user",
        "replace",
        "flower_auth",
        "every request checked by the platform: users, a viewer, API tokens, loopback only "
        "without credentials",
    ),
    PrivateUse(
        _HANDLER,
        "set_default_headers",
        "replace",
        "flower_auth",
        "no page can be framed (X-Frame-Options, frame-ancestors)",
    ),
    PrivateUse(_OPTIONS, "auth", "read", "flower_auth", "Flower's own OAuth login keeps its check"),
    PrivateUse(_OPTIONS, "url_prefix", "read", "flower_auth", "where /api/jobs is, for API tokens"),
)
