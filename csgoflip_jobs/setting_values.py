"""Parsing and checking the values :mod:`csgoflip_jobs.settings` holds: rates, Sentinel
lists, Redis URLs. Pure functions; the settings are read in one place, there."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

SENTINEL_DEFAULT_PORT = 26379


def parse_rate(value: str) -> tuple[int, int]:
    """``"10/s"`` -> (10, 1000); ``"600/m"`` -> (600, 60000)."""
    count, _, unit = value.strip().partition("/")
    windows = {"s": 1000, "m": 60_000}
    if not count.isdigit() or int(count) < 1 or unit not in windows:
        raise ValueError("must look like 10/s or 600/m")
    return int(count), windows[unit]


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``"10.0.0.1:26379, [::1]:26380"`` -> [("10.0.0.1", 26379), ("::1", 26380)];
    ValueError naming the bad entry otherwise."""
    nodes: list[tuple[str, int]] = []
    for entry in value.split(","):
        host, _, port = entry.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(
                f"must be a comma list of host:port, e.g. 10.0.0.1:{SENTINEL_DEFAULT_PORT},"
                f"10.0.0.2:{SENTINEL_DEFAULT_PORT} (bad entry {entry.strip()!r})"
            )
        nodes.append((host, int(port)))
    return nodes


def netloc(host: str, port: int) -> str:
    """``host:port``, the host in brackets when it is an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_redis_url(value: str) -> None:
    """ValueError saying what is wrong with a Redis URL (scheme, host, port)."""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must start with redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("has no host")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ValueError(f"has a bad port: {exc}") from None


def with_certificate_checks(url: str, ca_file: Path | None) -> str:
    """A ``rediss://`` URL whose every client verifies the server certificate.

    Adds ``ssl_cert_reqs=required`` (and ``ssl_ca_certs=<ca_file>`` when given) to the
    query, which redis-py, kombu and Celery's result backend all read; without it kombu
    would skip verification and the result backend would refuse the URL. Options the URL
    already has win; other schemes are returned unchanged.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return url
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("ssl_cert_reqs", "required")
    if ca_file is not None:
        query.setdefault("ssl_ca_certs", str(ca_file))
    return urlunsplit(parts._replace(query=urlencode(query, safe="/", quote_via=quote)))


def force_tls(url: str) -> str:
    """The URL with ``rediss://`` for ``redis://`` (production always speaks TLS)."""
    parts = urlsplit(url)
    if parts.scheme == "redis":
        return urlunsplit(parts._replace(scheme="rediss"))
    return url


def redacted_url(url: str) -> str:
    """``url`` without its query and with the password shown as ``**``, as Celery logs it
    (each part of a Sentinel group's ``;``-joined URL)."""
    if ";" in url:
        return ";".join(redacted_url(part) for part in url.split(";"))
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:**@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, query=""))


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password, and the password (None when it has none): for a
    client that takes the password apart, so the URL can be shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` put in when it carries none (and a password is given)."""
    parts = urlsplit(url)
    if not password or parts.password is not None or not parts.hostname:
        return url
    user, host = parts.username or "", parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
