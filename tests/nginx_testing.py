"""A real nginx in front of the application under test, and a client with its own address.

Each party has its own loopback address, so every address a span records can
be checked against the truth:

* the client connects from ``CLIENT`` (127.0.0.2);
* nginx listens on ``PROXY`` (127.0.0.3) and connects to the application
  from ``PROXY_OUT`` (127.0.0.4, ``proxy_bind``): the only peer a test
  trusts;
* the application listens on ``APP`` (127.0.0.5).

:func:`start_nginx` runs Debian's nginx in the foreground (``daemon off``,
one process) with its own configuration, prefix, pid file, logs and
temporary folders in a temporary folder, listening on ``PROXY`` only, and
:meth:`Nginx.stop` stops it by its PID. Without nginx the tests that need
it are skipped with a message, except in CI (``CI`` set), where they fail:
``.ci/run`` installs it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

CLIENT = "127.0.0.2"
PROXY = "127.0.0.3"
PROXY_OUT = "127.0.0.4"
APP = "127.0.0.5"

TIMEOUT_S = 10.0
_START_ATTEMPTS = 3  # a reserved port can be taken by someone else before nginx binds it
_DEBIAN_NGINX = "/usr/sbin/nginx"  # /usr/sbin is not on every PATH (tox passes the caller's)


def ipv6_loopback() -> bool:
    """Whether this machine has ::1 (some containers have no IPv6 at all)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(reason: str) -> None:
    """Skip the test outside CI; in CI, fail it: CI installs everything these tests need."""
    if _in_ci():
        pytest.fail(f"{reason} (CI is set: .ci/run should have installed it)", pytrace=False)
    pytest.skip(reason)


def nginx_binary() -> str:
    """The nginx executable, or a skip (a failure in CI) saying it is missing."""
    found = shutil.which("nginx") or (_DEBIAN_NGINX if os.access(_DEBIAN_NGINX, os.X_OK) else None)
    if found is None:
        missing("nginx is not installed (apt-get install nginx); the behind-a-proxy tests need it")
    assert found is not None
    return found


def free_port(address: str) -> int:
    """A port free on ``address`` right now, for a server that cannot be given port 0."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


_CONFIG = """\
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # Every connection to the application comes from this address.
    proxy_bind {proxy_out};
{http}
    server {{
        listen {proxy}:{port}{ssl};
{server}
    }}
}}
"""


@dataclass
class Nginx:
    """A running nginx: where it listens, and its own folder (config, logs)."""

    process: subprocess.Popen[bytes]
    prefix: Path
    port: int

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to nginx's PID (a fast shutdown), SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nginx(prefix: Path, server: str, http: str = "", ssl: bool = False) -> Nginx:
    """nginx listening on ``PROXY`` with ``server`` as its one server block's body.

    ``http`` goes into the ``http`` block (``map``, ``upstream``); with
    ``ssl`` the listener speaks TLS (the block must name the certificate).
    Returns once nginx accepts connections.
    """
    binary = nginx_binary()
    failure = ""
    for attempt in range(_START_ATTEMPTS):
        folder = prefix / f"nginx-{attempt}"
        folder.mkdir(parents=True)
        port = free_port(PROXY)
        config = folder / "nginx.conf"
        config.write_text(
            _CONFIG.format(
                prefix=folder,
                proxy_out=PROXY_OUT,
                http=http,
                proxy=PROXY,
                port=port,
                ssl=" ssl" if ssl else "",
                server=server,
            )
        )
        command = [binary, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        nginx = Nginx(process, folder, port)
        if _wait_until_listening(nginx):
            return nginx
        nginx.stop()
        failure = nginx.error_log()
        if "Address already in use" not in failure:
            break
    raise AssertionError(f"nginx did not start:\n{failure}")


def _wait_until_listening(nginx: Nginx) -> bool:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and nginx.process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((PROXY, nginx.port), timeout=1.0):
            return True
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def running_nginx(prefix: Path, server: str, http: str = "", ssl: bool = False) -> Iterator[Nginx]:
    nginx = start_nginx(prefix, server, http, ssl)
    try:
        yield nginx
    finally:
        nginx.stop()


# -- a certificate for TLS termination -------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def make_certificate(folder: Path, host: str) -> Certificate:
    """A self-signed certificate for ``host`` and ``PROXY`` (the openssl CLI, else ``cryptography``)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl:
        subprocess.run(
            [
                *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
                *("-nodes", "-days", "1", "-subj", f"/CN={host}", "-keyout", str(key), "-out", str(cert)),
                *("-addext", f"subjectAltName=DNS:{host},IP:{PROXY}"),
            ],
            check=True,
            capture_output=True,
            timeout=TIMEOUT_S,
        )
        return Certificate(cert, key)
    try:
        return _certificate_with_cryptography(cert, key, host)
    except ImportError:
        missing("neither the openssl command nor the cryptography package is installed (for TLS)")
        raise  # not reached: missing() skips or fails


def _certificate_with_cryptography(cert: Path, key: Path, host: str) -> Certificate:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address(PROXY))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Certificate(cert, key)


# -- the client -------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    client_port: int  # the port the client connected from


def get(
    port: int,
    target: str,
    headers: Mapping[str, str],
    *,
    host: str = PROXY,
    source: str = CLIENT,
    tls: Optional[ssl.SSLContext] = None,
) -> Response:
    """GET ``target`` from ``host:port`` over a fresh connection from ``source``."""
    connection: http.client.HTTPConnection
    if tls is None:
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S, source_address=(source, 0))
    else:
        connection = http.client.HTTPSConnection(
            host, port, timeout=TIMEOUT_S, source_address=(source, 0), context=tls
        )
    try:
        connection.request("GET", target, headers=dict(headers))
        assert connection.sock is not None  # gone once a response that closes has been read
        client_port = int(connection.sock.getsockname()[1])
        response = connection.getresponse()
        body = response.read()
        lowered = {name.lower(): value for name, value in response.getheaders()}
        return Response(response.status, lowered, body, client_port)
    finally:
        connection.close()
