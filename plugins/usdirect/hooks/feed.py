"""Streamed, verified download of the inventory feed.

The feed can be hundreds of megabytes, so it goes to disk in chunks and never sits in memory.
A body that ends early (fewer bytes than Content-Length, or a gzip stream without its trailer)
looks like a short catalog to everything downstream, which would archive real products: such a
download is discarded and retried, and only a verified, complete file is moved into place.
The file on disk is always plain CSV; gzip (as Content-Encoding or as a gzipped body) is
decompressed on the way. A body that is not a CSV at all (an HTML login page served with 200, a
binary file) is refused for good (``feed_sniff``).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import httpx

from usdirect.domain.progress import Progress
from usdirect.hooks.errors import (
    AuthenticationError,
    UsDirectError,
    describe,
    error_for_status,
    untrusted_certificate,
)
from usdirect.hooks.feed_sniff import check_feed_is_csv
from usdirect.hooks.http_settings import HttpSettings
from usdirect.hooks.retry import Retryable, retry_for_status, retryable_status, retrying

CREDENTIAL = "Feed URL"
SERVICE = "US Direct"  # whose 429s and retries the feed's count as (domain.metrics)
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"

T = TypeVar("T")


@dataclass(frozen=True)
class FeedValidators:
    """What the server said identifies this feed version; sent back to get 304 when unchanged."""

    etag: str | None = None
    last_modified: str | None = None

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    @classmethod
    def from_headers(cls, headers: httpx.Headers, fallback: FeedValidators | None = None) -> FeedValidators:
        fallback = fallback or cls()
        return cls(
            etag=headers.get("ETag") or fallback.etag,
            last_modified=headers.get("Last-Modified") or fallback.last_modified,
        )


@dataclass(frozen=True)
class FeedDownload:
    """Result of :func:`download_feed`; ``path`` is None when the feed was not modified."""

    not_modified: bool
    path: Path | None
    validators: FeedValidators
    bytes: int


class _IncompleteFeed(Exception):
    """The body ended before the server's own size or the gzip trailer said it would."""


def head_feed(
    http: httpx.Client, feed_url: str, settings: HttpSettings, *, what: str, where: str
) -> dict[str, object]:
    """``HEAD`` of the feed: status, size and validators (never the URL)."""
    response = _with_retries(http, "HEAD", feed_url, {}, settings, what=what, where=where, handle=lambda r: r)
    length = response.headers.get("Content-Length")
    return {
        "status": response.status_code,
        "content_length": int(length) if length and length.isdigit() else None,
        "content_type": response.headers.get("Content-Type"),
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
    }


def download_feed(
    http: httpx.Client,
    feed_url: str,
    dest: Path,
    validators: FeedValidators | None,
    settings: HttpSettings,
    *,
    what: str,
    where: str,
) -> FeedDownload:
    """Stream the feed into ``dest`` (plain CSV), or report 304 when ``validators`` still match."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    headers = {"Accept-Encoding": "gzip", **(validators or FeedValidators()).request_headers()}

    def handle(response: httpx.Response) -> FeedDownload:
        new_validators = FeedValidators.from_headers(response.headers, validators)
        if response.status_code == 304:
            return FeedDownload(True, None, new_validators, 0)
        try:
            with part.open("wb") as out:
                written = _copy_verified(response, out)
            check_feed_is_csv(part, response.headers.get("Content-Type"), where=where)
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return FeedDownload(False, dest, new_validators, written)

    return _with_retries(http, "GET", feed_url, headers, settings, what=what, where=where, handle=handle)


def _with_retries(
    http: httpx.Client,
    method: str,
    url: str,
    headers: dict[str, str],
    settings: HttpSettings,
    *,
    what: str,
    where: str,
    handle: Callable[[httpx.Response], T],
) -> T:
    """Run ``handle`` on the first good answer; retries transient failures within the budget."""

    def attempt() -> T:
        try:
            with http.stream(method, url, headers=headers) as response:
                status = response.status_code
                if status < 300 or status == 304:
                    return handle(response)
                response.read()
        except (httpx.TransportError, httpx.DecodingError, _IncompleteFeed) as exc:
            if tls_error := untrusted_certificate(exc, what=what, where=where):
                raise tls_error from None
            raise Retryable(describe(exc)) from None
        if not retryable_status(status):
            raise _feed_error(status, response, what=what, where=where)
        raise retry_for_status(response)

    return retrying(settings, what, service=SERVICE)(attempt)


def _feed_error(status: int, response: httpx.Response, *, what: str, where: str) -> UsDirectError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if status in (401, 403, 404, 410):
        # A feed URL that stopped working is a credential problem, whatever the status.
        return AuthenticationError(
            CREDENTIAL,
            status,
            f"Feed URL rejected ({status}) on {what}: copy the Feed URL again from the US Direct "
            f"portal into the Feed URL field of {where}; Get Inventory needs it",
        )
    return error_for_status(status, body, what=what, credential=CREDENTIAL, where=where)


def _copy_verified(response: httpx.Response, out: BinaryIO) -> int:
    """Copy the raw body to ``out``, gunzipping it; raises ``_IncompleteFeed`` on a short body."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise UsDirectError(
            f"the feed was sent with Content-Encoding {encoding!r}, which this package does not read; "
            f"ask US Direct to serve it plain or gzipped"
        )
    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    received = written = 0
    inflater: zlib._Decompress | None = None
    first = True
    progress = Progress("feed download", expected, unit="bytes")
    for chunk in response.iter_raw(_CHUNK):
        if not chunk:
            continue
        received += len(chunk)
        progress.advance(len(chunk))
        if first:
            first = False
            if encoding != "identity" or chunk.startswith(_GZIP_MAGIC):
                inflater = zlib.decompressobj(wbits=31)
        if inflater is None:
            out.write(chunk)
            written += len(chunk)
            continue
        data, inflater = _inflate(inflater, chunk)
        out.write(data)
        written += len(data)
    if expected is not None and received != expected:
        raise _IncompleteFeed(f"feed body ended after {received} of {expected} bytes")
    if inflater is not None and not inflater.eof:
        raise _IncompleteFeed(f"gzip stream ended without its trailer after {received} bytes")
    progress.finish()
    return written


def _inflate(inflater: zlib._Decompress, chunk: bytes) -> tuple[bytes, zlib._Decompress]:
    """Decompress ``chunk``, following into further gzip members (concatenated gzip files)."""
    parts = []
    while chunk:
        try:
            parts.append(inflater.decompress(chunk))
        except zlib.error as exc:
            raise _IncompleteFeed(f"gzip stream is corrupt ({exc})") from None
        chunk = inflater.unused_data
        if chunk:
            inflater = zlib.decompressobj(wbits=31)
    return b"".join(parts), inflater
