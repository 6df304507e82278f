"""Start private redis-server processes for tests (bound to 127.0.0.1 only), plain or
TLS-only with a throwaway CA made by ``openssl``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a self-signed CA, and a certificate for 127.0.0.1 signed by it."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a throwaway CA and a server certificate for 127.0.0.1/localhost in ``directory``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed (apt-get install openssl)")
    files = TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    ca_key, request, extensions = directory / "ca.key", directory / "server.csr", directory / "ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    new_key = ["-newkey", "rsa:2048", "-nodes"]
    make_ca = ["req", "-x509", *new_key, "-days", "2", "-subj", "/CN=test-CA", "-keyout", ca_key]
    request_cert = ["req", *new_key, "-subj", "/CN=127.0.0.1", "-keyout", files.server_key]
    sign = ["x509", "-req", "-in", request, "-CA", files.ca_cert, "-CAkey", ca_key]
    for command in (
        [*make_ca, "-out", files.ca_cert],
        [*request_cert, "-out", request],
        [*sign, "-days", "2", "-CAcreateserial", "-extfile", extensions, "-out", files.server_cert],
    ):
        subprocess.run([openssl, *map(str, command)], check=True, capture_output=True, timeout=60)
    return files


@dataclass
class RedisServer:
    """A redis-server child process and its URL."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        """redis:// URL of database 0 (rediss:// when the server speaks TLS only)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def url_with_password(self, password: str) -> str:
        """:attr:`url` carrying ``password`` (for a server started with --requirepass)."""
        return self.url.replace("://", f"://:{quote(password, safe='')}@", 1)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(
    *extra_args: str,
    port: int | None = None,
    directory: Path | None = None,
    tls: TlsFiles | None = None,
) -> RedisServer:
    """Start ``redis-server`` with ``extra_args`` and wait until it answers PING
    (in ``directory`` when given, e.g. to restart on the same append-only file).
    With ``tls`` it listens on ``port`` with TLS only (no plain-text port)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = port or free_port()
    directory = directory or Path(tempfile.mkdtemp(prefix="csgoflip-redis-"))
    process = subprocess.Popen(
        [
            binary,
            *_listen_args(port, tls),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            # A replica syncs at once (Redis waits 5 s by default to batch replicas).
            "--repl-diskless-sync-delay",
            "0",
            "--dir",
            str(directory),
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(process, port, directory, tls)
    password = (
        extra_args[extra_args.index("--requirepass") + 1]
        if ("--requirepass" in extra_args)
        else None
    )
    client = redis.Redis(
        port=port,
        password=password,
        socket_connect_timeout=0.2,
        ssl=tls is not None,
        ssl_ca_certs=str(tls.ca_cert) if tls else None,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"redis-server on port {port} did not start")


def _listen_args(port: int, tls: TlsFiles | None) -> list[str]:
    if tls is None:
        return ["--port", str(port)]
    return [
        *("--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"),
        *("--tls-cert-file", str(tls.server_cert), "--tls-key-file", str(tls.server_key)),
        *("--tls-ca-cert-file", str(tls.ca_cert)),
    ]


def answers(url: str) -> bool:
    """True when a Redis server at ``url`` answers PING."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False
