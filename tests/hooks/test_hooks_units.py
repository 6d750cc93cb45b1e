"""Pure parts of the hooks: paging, pacing, settings, error mapping, secret scrubbing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from usdirect.domain.redaction import redact, scrub, url_secrets
from usdirect.hooks import ratelimit
from usdirect.hooks.errors import (
    AuthenticationError,
    ConnectionConfigError,
    DuplicateError,
    NotFoundError,
    UsDirectError,
    ValidationError,
    error_for_status,
)
from usdirect.hooks.http_settings import HttpSettings
from usdirect.hooks.paging import iso_timestamp, iter_keyset, iter_numbered
from usdirect.hooks.retry import retry_after_seconds
from usdirect.hooks.secrets import register_secret


def _row(sku: str, ts: str, qty: int = 1) -> dict:
    return {"sku": sku, "updated_at": ts, "quantity": qty}


def test_keyset_dedup_keeps_newest_within_and_across_pages() -> None:
    pages = {
        None: ([_row("a", "2026-11-20T08:00:00Z", 1), _row("b", "2026-11-20T08:00:00Z")], "c1"),
        # "a" again, older: dropped; "b" newer: delivered again; "c" repeated in-page: newest kept
        "c1": (
            [
                _row("a", "2026-11-20T07:00:00Z", 9),
                _row("b", "2026-11-20T09:00:00+00:00", 5),
                _row("c", "2026-11-20T08:00:00Z", 1),
                _row("c", "2026-11-20T10:00:00+02:00", 2),  # 08:00Z: not newer
                _row("c", "2026-11-20T08:30:00Z", 3),
            ],
            "c2",
        ),
        "c2": ([_row("a", "2026-11-20T08:00:00Z", 1)], None),  # same version again: dropped
    }
    calls: list[str | None] = []

    def fetch(cursor: str | None) -> tuple[list[dict], str | None]:
        calls.append(cursor)
        return pages[cursor]

    got = list(iter_keyset(fetch, "sku"))
    assert calls == [None, "c1", "c2"]
    assert got == [
        [_row("a", "2026-11-20T08:00:00Z", 1), _row("b", "2026-11-20T08:00:00Z")],
        [_row("b", "2026-11-20T09:00:00+00:00", 5), _row("c", "2026-11-20T08:30:00Z", 3)],
    ]


def test_iso_timestamp_is_utc_and_refuses_naive() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert iso_timestamp(datetime(2026, 11, 20, 10, 15, tzinfo=plus_two)) == "2026-11-20T08:15:00Z"
    assert iso_timestamp(datetime(2026, 11, 20, 8, 15, tzinfo=UTC)) == "2026-11-20T08:15:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        iso_timestamp(datetime(2026, 11, 20))


def test_numbered_pages_until_total_or_empty() -> None:
    data = {1: [{"id": 1}], 2: [{"id": 2}], 3: []}
    assert list(iter_numbered(lambda p: (data[p], 5))) == [[{"id": 1}], [{"id": 2}]]
    assert list(iter_numbered(lambda p: (data[p], 1))) == [[{"id": 1}]]


def test_rate_limiter_paces_threads_sharing_a_token() -> None:
    limiter = ratelimit.limiter_for("unit", "token-shared-by-threads", 20.0)
    assert ratelimit.limiter_for("unit", "token-shared-by-threads", 20.0) is limiter
    assert ratelimit.limiter_for("unit", "another-token", 20.0) is not limiter
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(8):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    # 32 requests at 20/s: no one-second window holds more than 20
    assert max(sum(1 for s in stamps if first <= s < first + 1.0) for first in stamps) <= 20
    assert stamps[-1] - stamps[0] >= 31 / 20


def test_rate_limiter_registry_never_holds_the_token() -> None:
    ratelimit.limiter_for("unit", "s3cr3t-token-value", 5.0)
    assert not any("s3cr3t" in key for key in ratelimit._registry)


def test_rate_limiter_defer_holds_everyone_back() -> None:
    limiter = ratelimit.RateLimiter(1000.0)
    limiter.defer(0.3)
    started = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - started >= 0.25


def test_settings_read_both_extra_spellings_and_refuse_bad_values() -> None:
    settings = HttpSettings.from_extras(
        {"rate_limit": "7", "extra__usdirect__timeout": 12, "max_attempts": "3", "backoff_base": 0.01},
        conn_type="usdirect",
        default_rate=5.0,
        where="the usdirect connection 'x'",
    )
    assert (settings.rate_limit, settings.read_timeout, settings.max_attempts) == (7.0, 12.0, 3)
    assert settings.backoff_base == 0.01
    assert HttpSettings.from_extras({}, conn_type="flxpoint", default_rate=2.0, where="w").rate_limit == 2.0
    with pytest.raises(ConnectionConfigError, match=r"'timeout' on the usdirect connection 'x'.*positive"):
        HttpSettings.from_extras(
            {"timeout": "soon"}, conn_type="usdirect", default_rate=5.0, where="the usdirect connection 'x'"
        )


def test_retry_after_seconds_and_http_date() -> None:
    import httpx

    assert retry_after_seconds(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(httpx.Headers({})) is None
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "garbage"})) is None


def _body(code: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def test_error_for_status_maps_to_typed_errors() -> None:
    kw = {
        "what": "US Direct GET /v1/x",
        "credential": "Reseller Token",
        "where": "the usdirect connection 'c'",
    }
    auth = error_for_status(401, _body("unauthorized", "bad token"), **kw)
    assert isinstance(auth, AuthenticationError)
    assert (auth.credential, auth.status) == ("Reseller Token", 401)
    assert "re-enter the Reseller Token on the usdirect connection 'c'" in str(auth)
    assert isinstance(error_for_status(404, _body("order_not_found", "no"), **kw), NotFoundError)
    dup = error_for_status(
        409, _body("duplicate_po", "dup", [{"field": "po_number", "order_id": "UD-7"}]), **kw
    )
    assert isinstance(dup, DuplicateError)
    assert dup.existing_id == "UD-7"
    bad = error_for_status(
        422, _body("validation_failed", "bad", [{"field": "ship_to.state", "message": "AK"}]), **kw
    )
    assert isinstance(bad, ValidationError)
    assert bad.details == [{"field": "ship_to.state", "message": "AK"}]
    assert "ship_to.state: AK" in str(bad)
    other = error_for_status(400, None, **kw)
    assert type(other) is UsDirectError
    assert "HTTP 400" in str(other)


def test_scrub_removes_registered_secrets() -> None:
    register_secret("tok-1234567890")
    assert scrub("Authorization: Bearer tok-1234567890 !") == "Authorization: Bearer *** !"
    error = error_for_status(
        422,
        _body("validation_failed", "x", [{"field": "f", "message": "echo tok-1234567890"}]),
        what="w",
        credential="API Token",
        where="c",
    )
    assert "tok-1234567890" not in str(error)
    assert "tok-1234567890" not in repr(error.details)


def test_alerts_and_hooks_redact_from_one_registry() -> None:
    """A hook's registered secrets are gone from alert text too; short feed URL query values are kept."""
    for secret in url_secrets("https://u:pw-secret-9@feeds.example/inv.csv?key=feedkey-123&fmt=1"):
        register_secret(secret)
    assert scrub("key feedkey-123, password pw-secret-9, page 1") == "key ***, password ***, page 1"
    assert redact("retrying feedkey-123") == "retrying ***"
    assert redact("GET https://x.example/a.csv?key=zzzzzz failed: tok9", ["tok9"]) == (
        "GET https://x.example/a.csv?*** failed: ***"
    )


def test_httpx_log_scrubbing_is_attached_by_the_hook_not_by_import() -> None:
    code = (
        "import logging\n"
        "from usdirect.hooks import http, secrets, usdirect\n"
        "def count():\n"
        "    return sum(isinstance(f, secrets._ScrubFilter) for f in logging.getLogger('httpx').filters)\n"
        "before = count()\n"
        "usdirect.UsDirectHook('a'), usdirect.UsDirectHook('b')\n"
        "print(before, count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["0", "1"]
