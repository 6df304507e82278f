"""The Jobs pages and their JSON API, as Flower handlers (Flower's look and its login).

Pages (GET): ``/jobs``, ``/jobs/<queue>/<state>?page=&name=``, ``/jobs/<queue>/job/<id>``.
Actions (POST, forms of those pages; each answers with a redirect back and a notice):
``/jobs/<queue>/job/<id>/{retry,remove,promote}`` and
``/jobs/<queue>/actions/{retry-failed,pause,resume,clean}``. The same under ``/api/jobs``
answer JSON: 404 for an unknown queue, state, job or action, 409 for an action the
job's state refuses, 400 for bad form values, ``{"error": ...}`` saying which.

Every request needs Flower's credentials (:mod:`.flower_auth`). Every POST is also
checked, in this order: the credentials (401; a viewer's POST: 403), Flower's
cross-site checks (Sec-Fetch-Site / Origin), tornado's anti-forgery token (the
``_xsrf`` cookie echoed as a ``_xsrf`` form field or an ``X-XSRFToken`` header; always
for basic auth, even where Flower skips it; not for an API token), and Flower's
``--read_only`` (403). The page data and actions are
:mod:`csgoflip_jobs.engine.board`; Redis is read in Flower's executor, off its loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from functools import partial
from http.client import responses
from typing import Any, TypeVar
from urllib.parse import urlsplit

import tornado.web
from flower.views import BaseHandler
from tornado.web import HTTPError, authenticated, url

from csgoflip_jobs.engine.board import actions, pages
from csgoflip_jobs.engine.board.errors import NotFoundError
from csgoflip_jobs.engine.board.pages import JobsBoard
from csgoflip_jobs.engine.errors import JobOptionsError, JobStateError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PAGE_DIGITS = 6
MAX_NAME_CHARS = 200

NOTICE_COOKIE = "csgoflip_jobs_notice"
"""Signed cookie carrying an action's outcome to the page it redirects to."""


class _BoardHandler(BaseHandler):  # type: ignore[misc]
    """Flower's authentication, error pages and rendering, with the POST checks."""

    def initialize(self, board: JobsBoard) -> None:
        self.board = board
        self._post_checked = False

    def prepare(self) -> None:
        # Tornado checks the token before prepare only while Flower keeps xsrf_cookies
        # on; checking here too keeps the actions safe should that setting change.
        if self.request.method == "POST":
            self.check_xsrf_cookie()

    def check_xsrf_cookie(self) -> None:
        if self._post_checked:
            return
        if not self.current_user:  # basic auth raises 401 itself
            raise HTTPError(403, "log in first")
        super().check_xsrf_cookie()
        if not self.request.headers.get("Authorization", "").startswith("Bearer "):
            # A browser sends basic auth by itself, so a page of another site could act
            # with it: the token proves the form is ours. A bearer token is never sent
            # by itself (a script adds it), so there is nothing to forge.
            tornado.web.RequestHandler.check_xsrf_cookie(self)
        if self.application.options.read_only:
            raise HTTPError(403, "Flower runs read-only (--read_only): the Jobs actions are off")
        self._post_checked = True

    @property
    def actor(self) -> str:
        """Who acts: the signed-in name (for the audit line of an action)."""
        return str(self.current_user)

    async def board_call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in Flower's executor; NotFoundError becomes a 404."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args))
        except NotFoundError as exc:
            raise HTTPError(404, "%s", str(exc)) from None


class _PageHandler(_BoardHandler):
    """A Jobs page: Flower's base template, the outcome of the last action shown once."""

    def render_page(self, template: str, **values: Any) -> None:
        self.render(
            template,
            notice=self._take_notice(),
            read_only=self.application.options.read_only,
            age=pages.format_duration_ms,
            when=pages.format_timestamp_ms,
            pretty=_pretty_json,
            chart_bars=pages.chart_bars,
            **values,
        )

    def set_notice(self, kind: str, text: str) -> None:
        """Show ``text`` (kind ``success`` or ``danger``) on the next page rendered."""
        self.set_secure_cookie(NOTICE_COOKIE, json.dumps([kind, text]), expires_days=None)

    def _take_notice(self) -> tuple[str, str] | None:
        raw = self.get_secure_cookie(NOTICE_COOKIE, max_age_days=1)
        if raw is None:
            return None
        self.clear_cookie(NOTICE_COOKIE)
        kind, text = json.loads(raw)
        return (kind if kind in ("success", "danger") else "secondary"), str(text)

    def back_to(self, default: str) -> None:
        """Redirect (303) to the form's ``next`` when it is a Jobs page, else ``default``."""
        wanted = self.get_body_argument("next", "")
        parts = urlsplit(wanted)
        local = not parts.scheme and not parts.netloc and wanted.isprintable()
        jobs_root = self.reverse_url("jobs")
        fits = local and parts.path.startswith(jobs_root) and "\\" not in wanted
        self.redirect(wanted if fits else default, status=303)


class JobsView(_PageHandler):
    """``/jobs``: every queue with its counts, pause and last hour."""

    @authenticated
    async def get(self) -> None:
        rows = await self.board_call(self.board.overview)
        self.render_page("jobs.html", rows=rows, states=pages.COUNT_STATES)


class JobListView(_PageHandler):
    """``/jobs/<queue>/<state>``: one page of the state's jobs, newest first."""

    @authenticated
    async def get(self, queue: str, state: str) -> None:
        page, name = _list_arguments(self)
        listing = await self.board_call(self.board.job_list, queue, state, page, name)
        self.render_page("jobs_list.html", listing=listing, states=pages.COUNT_STATES)


class JobView(_PageHandler):
    """``/jobs/<queue>/job/<id>``: the job whole, with its logs."""

    @authenticated
    async def get(self, queue: str, job_id: str) -> None:
        detail = await self.board_call(self.board.job_detail, queue, job_id)
        self.render_page("jobs_job.html", detail=detail, job=detail.job, queue=queue)


class JobActionView(_PageHandler):
    """POST ``/jobs/<queue>/job/<id>/<action>``: then back, with the outcome shown."""

    @authenticated
    async def post(self, queue: str, job_id: str, action: str) -> None:
        job_page = self.reverse_url("jobs-job", queue, job_id)
        try:
            run = actions.run_job_action
            outcome = await self.board_call(run, self.board, queue, job_id, action, self.actor)
        except (JobStateError, JobOptionsError) as exc:
            self.set_notice("danger", f"Refused: {exc}")
            self.back_to(job_page)
            return
        self.set_notice("success", outcome.message)
        self.back_to(self.reverse_url("jobs") if outcome.job_gone else job_page)


class QueueActionView(_PageHandler):
    """POST ``/jobs/<queue>/actions/<action>``: then back, with the outcome shown."""

    @authenticated
    async def post(self, queue: str, action: str) -> None:
        form = _form(self)
        try:
            run = actions.run_queue_action
            outcome = await self.board_call(run, self.board, queue, action, form, self.actor)
        except (JobStateError, JobOptionsError) as exc:
            self.set_notice("danger", f"Refused: {exc}")
        else:
            self.set_notice("success", outcome.message)
        self.back_to(self.reverse_url("jobs"))


class _ApiHandler(_BoardHandler):
    """JSON in and out; errors as ``{"error": ...}`` (401 as Flower answers it)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 401:
            super().write_error(status_code, **kwargs)
            return
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.get_message() if isinstance(exc, HTTPError) else None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message or responses.get(status_code, "error")}))

    async def answer(self, function: Callable[..., Any], *args: Any) -> None:
        """Call ``function`` off the loop and write its result's ``as_dict()`` (or itself)."""
        try:
            result = await self.board_call(function, *args)
        except JobStateError as exc:
            raise HTTPError(409, "%s", str(exc)) from None
        except JobOptionsError as exc:
            raise HTTPError(400, "%s", str(exc)) from None
        _ = self.xsrf_token  # sets the _xsrf cookie a script echoes back on its POSTs
        data = result.as_dict() if hasattr(result, "as_dict") else result
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))


class ApiQueues(_ApiHandler):
    """GET ``/api/jobs``: ``{"queues": [overview rows]}``."""

    @authenticated
    async def get(self) -> None:
        await self.answer(lambda: {"queues": [row.as_dict() for row in self.board.overview()]})


class ApiJobList(_ApiHandler):
    """GET ``/api/jobs/<queue>/<state>?page=&name=``: one page, as the list page."""

    @authenticated
    async def get(self, queue: str, state: str) -> None:
        page, name = _list_arguments(self)
        await self.answer(self.board.job_list, queue, state, page, name)


class ApiJob(_ApiHandler):
    """GET ``/api/jobs/<queue>/job/<id>``: the job and its logs."""

    @authenticated
    async def get(self, queue: str, job_id: str) -> None:
        await self.answer(self.board.job_detail, queue, job_id)


class ApiJobAction(_ApiHandler):
    """POST ``/api/jobs/<queue>/job/<id>/<action>``: ``{"message", "job_gone"}``."""

    @authenticated
    async def post(self, queue: str, job_id: str, action: str) -> None:
        run, actor = actions.run_job_action, self.actor
        await self.answer(lambda: vars(run(self.board, queue, job_id, action, actor)))


class ApiQueueAction(_ApiHandler):
    """POST ``/api/jobs/<queue>/actions/<action>`` (clean: ``state``, ``minutes``)."""

    @authenticated
    async def post(self, queue: str, action: str) -> None:
        form, run, actor = _form(self), actions.run_queue_action, self.actor
        await self.answer(lambda: vars(run(self.board, queue, action, form, actor)))


def _list_arguments(handler: tornado.web.RequestHandler) -> tuple[int, str | None]:
    page = handler.get_query_argument("page", "1").strip()
    name = handler.get_query_argument("name", "").strip()
    if not (page.isdigit() and len(page) <= MAX_PAGE_DIGITS and int(page) >= 1):
        raise HTTPError(400, "page must be a whole number from 1 to %s", "9" * MAX_PAGE_DIGITS)
    if len(name) > MAX_NAME_CHARS:
        raise HTTPError(400, "a job name is at most %d characters", MAX_NAME_CHARS)
    return int(page), (name or None)


def _form(handler: tornado.web.RequestHandler) -> dict[str, str]:
    return {key: handler.get_body_argument(key) for key in handler.request.body_arguments}


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def handlers(board: JobsBoard) -> list[url]:
    """The Jobs routes, to go before Flower's catch-all 404 handler."""
    kwargs = {"board": board}
    return [
        url(r"/jobs", JobsView, kwargs, name="jobs"),
        url(r"/jobs/([^/]+)/job/([^/]+)", JobView, kwargs, name="jobs-job"),
        url(r"/jobs/([^/]+)/job/([^/]+)/([^/]+)", JobActionView, kwargs, name="jobs-job-action"),
        url(r"/jobs/([^/]+)/actions/([^/]+)", QueueActionView, kwargs, name="jobs-queue-action"),
        url(r"/jobs/([^/]+)/([^/]+)", JobListView, kwargs, name="jobs-list"),
        url(r"/api/jobs", ApiQueues, kwargs),
        url(r"/api/jobs/([^/]+)/job/([^/]+)", ApiJob, kwargs),
        url(r"/api/jobs/([^/]+)/job/([^/]+)/([^/]+)", ApiJobAction, kwargs),
        url(r"/api/jobs/([^/]+)/actions/([^/]+)", ApiQueueAction, kwargs),
        url(r"/api/jobs/([^/]+)/([^/]+)", ApiJobList, kwargs),
    ]
