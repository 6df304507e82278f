"""Flower's templates with the platform's changes, and the Jobs pages' own templates,
served by one loader to Flower's pages and the Jobs pages alike.

Each change inserts a snippet right after (or instead of) an anchor text of one of
Flower's templates; the anchors are listed in ``audit.py`` and checked against the
installed Flower by ``tests/test_celery_ext.py``. An anchor Flower no longer has
leaves its template as it is (logged), so Flower still starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tornado.template import DictLoader

log = logging.getLogger(__name__)

OWN_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Amendment:
    """Put ``snippet`` after the first ``anchor`` of Flower's ``template`` (or in its
    place, with ``replace``)."""

    template: str
    anchor: str
    snippet: str
    replace: bool = False

    def apply(self, source: str) -> str:
        """``source`` amended; unchanged (and logged) when the anchor is missing."""
        at = source.find(self.anchor)
        if at < 0:
            log.warning("Flower's %s lacks %r: left unchanged", self.template, self.anchor)
            return source
        end = at + len(self.anchor)
        return source[: at if self.replace else end] + self.snippet + source[end:]


JOBS_NAV_ANCHOR = ">Broker</a>\n        </li>"
BROKER_HEADER_ANCHOR = '<th class="broker-secondary-column">Messages</th>'
BROKER_EYEBROW_ANCHOR = '<p class="page-eyebrow">Message broker</p>'

AMENDMENTS = (
    Amendment(
        "navbar.html",
        JOBS_NAV_ANCHOR,
        """
        <li class="nav-item">
          <a class="nav-link{% if active_tab == 'jobs' %} active{% end %}"
            href="{{ reverse_url('jobs') }}"
            {% if active_tab == 'jobs' %}aria-current="page"{% end %}>Jobs</a>
        </li>""",
    ),
    Amendment(
        "broker.html",
        BROKER_HEADER_ANCHOR,
        '<th class="broker-secondary-column">Waiting messages</th>',
        replace=True,
    ),
    Amendment(
        "broker.html",
        BROKER_EYEBROW_ANCHOR,
        """
      <p class="page-description mt-2" id="broker-waiting-only">Waiting only: the messages
        in each queue's lists. Delayed jobs, retries waiting their backoff, running and
        paused jobs are counted on the <a href="{{ reverse_url('jobs') }}">Jobs</a> page.</p>""",
    ),
)


def template_loader(flower_templates: Path) -> DictLoader:
    """Flower's templates (from its ``template_path``) amended, plus the Jobs pages'.

    The Jobs templates are all named ``jobs*.html``, a name Flower does not use.
    """
    sources = {path.name: path.read_text() for path in sorted(flower_templates.glob("*.html"))}
    for amendment in AMENDMENTS:
        if amendment.template in sources:
            sources[amendment.template] = amendment.apply(sources[amendment.template])
    own = {path.name: path.read_text() for path in sorted(OWN_TEMPLATES.glob("jobs*.html"))}
    clash = set(own) & set(sources)
    if clash:
        raise RuntimeError(f"Flower now has templates named {sorted(clash)}: rename ours")
    return DictLoader({**sources, **own})
