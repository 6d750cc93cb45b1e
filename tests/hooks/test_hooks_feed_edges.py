"""Feed answers the sandbox does not produce, served by a tiny real HTTP(S) server.

A gzipped file published without Content-Encoding, a gzip stream cut short inside a body whose
HTTP framing is complete (so only the missing gzip trailer reveals it), and TLS with a private CA.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from usdirect.hooks.errors import ConnectionConfigError, TransientExhaustedError, UsDirectError
from usdirect.hooks.usdirect import UsDirectHook

CSV = ("sku,title\n" + "".join(f'"{i}","Item {i}, größer"\n' for i in range(20000))).encode()
GZ = gzip.compress(CSV)


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.cut_first = 0  # answer this many GETs with a gzip stream cut short
        self.gets = 0


class Handler(BaseHTTPRequestHandler):
    server: FeedServer

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self.server.gets += 1
        body = GZ[: len(GZ) // 2] if self.server.gets <= self.server.cut_first else GZ
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def use_feed(
    mp: pytest.MonkeyPatch, server: FeedServer, scheme: str = "http", **extra: object
) -> UsDirectHook:
    port = server.server_address[1]
    conn = {
        "conn_type": "usdirect",
        "host": f"{scheme}://localhost:{port}",
        "password": "edge-api-token",
        "extra": {
            "feed_url": f"{scheme}://localhost:{port}/inventory.csv.gz?key=edge-feed-key",
            "backoff_base": 0.01,
            "backoff_max": 0.02,
            "max_attempts": 3,
            **extra,
        },
    }
    mp.setenv("AIRFLOW_CONN_USDIRECT_DEFAULT", json.dumps(conn))
    return UsDirectHook()


@pytest.fixture
def hook(feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> UsDirectHook:
    return use_feed(monkeypatch, feed_server)


def test_gzip_file_without_content_encoding_lands_as_plain_csv(hook: UsDirectHook, tmp_path: Path) -> None:
    result = hook.download_feed(tmp_path / "feed.csv")
    assert result.path.read_bytes() == CSV
    assert result.bytes == len(CSV)


def test_gzip_stream_without_trailer_is_retried(
    hook: UsDirectHook, feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.cut_first = 2
    result = hook.download_feed(tmp_path / "feed.csv")
    assert feed_server.gets == 3
    assert result.path.read_bytes() == CSV


def test_short_gzip_is_never_handed_on(hook: UsDirectHook, feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.cut_first = 99
    with pytest.raises(TransientExhaustedError, match="gzip stream ended without its trailer"):
        hook.download_feed(tmp_path / "feed.csv")
    assert feed_server.gets == 3
    assert list(tmp_path.iterdir()) == []


def _private_ca(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A throw-away CA (written to ca.pem) and a server context with a localhost cert it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("usdirect test CA", ca_key, "usdirect test CA", ca_key, ca=True)
    server_cert = cert("localhost", server_key, "usdirect test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(
        server_cert.public_bytes(pem)
        + server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    return tmp_path / "ca.pem", context


def test_tls_is_verified_and_a_private_ca_can_be_configured(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca_file, context = _private_ca(tmp_path)
    feed_server.socket = context.wrap_socket(feed_server.socket, server_side=True)

    untrusted = use_feed(monkeypatch, feed_server, "https")
    with pytest.raises(
        UsDirectError, match=r"TLS certificate is not trusted.*set 'ca_bundle' on the usdirect"
    ):
        untrusted.download_feed(tmp_path / "feed.csv")
    assert feed_server.gets == 0  # not retried, nothing served

    trusted = use_feed(monkeypatch, feed_server, "https", ca_bundle=str(ca_file))
    assert trusted.download_feed(tmp_path / "feed.csv").path.read_bytes() == CSV

    missing = use_feed(monkeypatch, feed_server, "https", ca_bundle=str(tmp_path / "nope.pem"))
    with pytest.raises(
        ConnectionConfigError, match="'ca_bundle' on the usdirect connection 'usdirect_default'"
    ):
        missing.ping()
