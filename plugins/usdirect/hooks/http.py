"""The resilient HTTP layer both hooks stand on.

One ``httpx.Client`` per hook (connection reuse, explicit connect/read timeouts, TLS verified
against the system store or the connection's ``ca_bundle``) wrapped by :class:`ApiClient`, which
paces requests through the per-token rate limiter and retries what is safe to retry:
429 (honouring Retry-After), 5xx, connection errors, read timeouts and truncated bodies, with
exponential backoff and jitter, capped in attempts and in total time. Other 4xx are mapped to
typed errors at once. Submissions (``submission=True``) are only retried when the request
provably was not processed (connection never opened, or 429).

Secrets given to :func:`register_secret` are handed to Airflow's masker and scrubbed from every
message this package builds and from httpx's own request log lines.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from usdirect import __version__
from usdirect.hooks.errors import (
    AuthenticationError,
    ConnectionConfigError,
    DuplicateError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitExhaustedError,
    RetryExhaustedError,
    TransientExhaustedError,
    UsDirectError,
    ValidationError,
    format_details,
)
from usdirect.hooks.ratelimit import Pacer

log = logging.getLogger(__name__)

USER_AGENT = f"usdirect-airflow/{__version__}"
MASK = "***"

# --------------------------------------------------------------------------------------------
# Secrets


_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its stripped form) in Airflow's logs and in every message built here."""
    if not value:
        return
    from airflow.sdk.log import mask_secret

    for form in {value, value.strip()} - {""}:
        mask_secret(form)
        with _secrets_lock:
            _secrets.add(form)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _ScrubFilter(logging.Filter):
    """httpx logs every request URL at INFO; the feed URL is a secret, so scrub the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_ScrubFilter())

# --------------------------------------------------------------------------------------------
# Settings


def extra_value(extras: Mapping[str, Any], conn_type: str, name: str) -> Any:
    """A conn-field value, stored by the UI as ``name`` or ``extra__<conn_type>__<name>``."""
    for key in (name, f"extra__{conn_type}__{name}"):
        value = extras.get(key)
        if value is not None and value != "":
            return value
    return None


def _number(extras: Mapping[str, Any], conn_type: str, name: str, default: float, where: str) -> float:
    value = extra_value(extras, conn_type, name)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise ConnectionConfigError(
            f"extra '{name}' on {where} must be a positive number, got {value!r}: fix it in the "
            f"connection's extra fields or remove it to use the default {default:g}"
        )
    return number


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts, TLS and retry budget of one connection (all overridable in its extras)."""

    rate_limit: float
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    ca_bundle: str | None = None
    max_attempts: int = 6
    max_retry_time: float = 300.0
    backoff_base: float = 1.0
    backoff_max: float = 30.0

    @classmethod
    def from_extras(
        cls, extras: Mapping[str, Any], *, conn_type: str, default_rate: float, where: str
    ) -> HttpSettings:
        defaults = cls(rate_limit=default_rate)

        def num(name: str, default: float) -> float:
            return _number(extras, conn_type, name, default, where)

        ca_bundle = extra_value(extras, conn_type, "ca_bundle")
        return cls(
            rate_limit=num("rate_limit", default_rate),
            connect_timeout=num("connect_timeout", defaults.connect_timeout),
            read_timeout=num("timeout", defaults.read_timeout),
            ca_bundle=str(ca_bundle) if ca_bundle else None,
            max_attempts=max(1, int(num("max_attempts", defaults.max_attempts))),
            max_retry_time=num("max_retry_time", defaults.max_retry_time),
            backoff_base=num("backoff_base", defaults.backoff_base),
            backoff_max=num("backoff_max", defaults.backoff_max),
        )

    def quick(self) -> HttpSettings:
        """A short budget for interactive checks (Test Connection answers within seconds)."""
        return HttpSettings(
            rate_limit=self.rate_limit,
            connect_timeout=min(self.connect_timeout, 10.0),
            read_timeout=min(self.read_timeout, 15.0),
            ca_bundle=self.ca_bundle,
            max_attempts=min(self.max_attempts, 3),
            max_retry_time=min(self.max_retry_time, 10.0),
            backoff_base=min(self.backoff_base, 0.5),
            backoff_max=min(self.backoff_max, 2.0),
        )


def build_http_client(
    settings: HttpSettings,
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = False,
    where: str,
) -> httpx.Client:
    """An ``httpx.Client`` with explicit timeouts, TLS verification and the package User-Agent."""
    verify: ssl.SSLContext | bool = True
    if settings.ca_bundle:
        try:
            verify = ssl.create_default_context(cafile=settings.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionConfigError(
                f"extra 'ca_bundle' on {where} could not be loaded ({type(exc).__name__}): point it "
                f"at a readable PEM file of CA certificates, or remove it to use the system store"
            ) from None
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        timeout=httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout, pool=settings.read_timeout
        ),
        verify=verify,
        follow_redirects=follow_redirects,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )


# --------------------------------------------------------------------------------------------
# Retry budget


class RetryBudget:
    """Counts attempts and elapsed time of one logical call and sleeps between attempts."""

    def __init__(self, settings: HttpSettings, what: str) -> None:
        self.settings = settings
        self.what = what
        self.attempt = 1
        self.started = time.monotonic()

    def backoff(self) -> float:
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (self.attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def wait_or_raise(
        self, reason: str, *, retry_after: float | None = None, exhausted: type[RetryExhaustedError]
    ) -> None:
        """Sleep before the next attempt, or raise ``exhausted`` when the budget is spent."""
        if retry_after is None:
            delay = self.backoff()
        else:  # honour the server's wait; a little jitter so that threads do not return in step
            delay = retry_after + random.uniform(0, min(1.0, self.settings.backoff_base))
        elapsed = time.monotonic() - self.started
        if self.attempt >= self.settings.max_attempts or elapsed + delay > self.settings.max_retry_time:
            fix = (
                "something else may be using the same token: lower 'rate_limit' on the connection, or "
                "raise 'max_retry_time' to wait longer"
                if exhausted is RateLimitExhaustedError
                else "the service or the network is unstable; the task's own retries will try again, "
                "and 'max_attempts' / 'max_retry_time' on the connection allow a longer wait per call"
            )
            raise exhausted(
                f"{self.what} gave up after {self.attempt} attempt(s) in {elapsed:.1f} s "
                f"(last: {reason}): {fix}",
                last=reason,
            ) from None  # the transport error's own text is not ours to vouch for
        log.warning(
            "%s: %s; retry %d/%d in %.2f s",
            self.what,
            reason,
            self.attempt,
            self.settings.max_attempts - 1,
            delay,
        )
        time.sleep(delay)
        self.attempt += 1

    def wait_after_status(self, response: httpx.Response, limiter: Pacer | None = None) -> None:
        """Wait out a 429 (holding back every user of the token) or a 5xx, honouring Retry-After."""
        retry_after = retry_after_seconds(response.headers)
        if response.status_code == 429:
            if retry_after and limiter is not None:
                limiter.defer(retry_after)
            self.wait_or_raise(
                "HTTP 429 Too Many Requests", retry_after=retry_after, exhausted=RateLimitExhaustedError
            )
        else:
            self.wait_or_raise(
                f"HTTP {response.status_code}", retry_after=retry_after, exhausted=TransientExhaustedError
            )


def retryable_status(status: int) -> bool:
    """429 and 5xx are worth another attempt; other 4xx would fail the same way again."""
    return status == 429 or status >= 500


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date), None when absent or unreadable."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------------------------------------
# Status → typed error

_EXISTING_ID_KEYS = ("existing_id", "existingId", "order_id", "orderId", "id")


def _error_parts(body: Any) -> tuple[str, str, list[dict[str, Any]]]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", []
    details = error.get("details")
    details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    return str(error.get("code") or ""), str(error.get("message") or ""), details


def existing_id(body: Any) -> str | None:
    """The id of the resource a 409 collided with, wherever the error body puts it."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    details = error.get("details")
    candidates = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    if isinstance(details, dict):
        candidates.append(details)
    candidates.append(error)
    for candidate in candidates:
        for key in _EXISTING_ID_KEYS:
            if candidate.get(key) not in (None, ""):
                return str(candidate[key])
    return None


def error_for_status(status: int, body: Any, *, what: str, credential: str, where: str) -> UsDirectError:
    """The typed error of a non-retryable error answer."""
    code, message, details = _error_parts(body)
    said = scrub(f"{code}: {message}" if code and message else code or message or "no error body")
    if status in (401, 403):
        if status == 401:
            text = (
                f"{credential} rejected (401) on {what}: re-enter the {credential} on {where} "
                f"and run Test Connection"
            )
        else:
            text = (
                f"{credential} has no access (403) on {what} ({said}): check that the account behind "
                f"the {credential} on {where} is entitled to it, or ask the supplier to enable it"
            )
        return AuthenticationError(credential, status, text)
    if status == 404:
        return NotFoundError(f"{what}: not found (404, {said})")
    if status == 409:
        found = existing_id(body)
        return DuplicateError(
            found, f"{what}: already exists (409, {said}); existing id {found or 'not given'}"
        )
    if status == 422:
        safe = [{k: scrub(str(v)) for k, v in d.items()} for d in details]
        return ValidationError(
            safe, f"{what}: rejected as invalid (422): {format_details(safe)}; correct these fields"
        )
    return UsDirectError(
        f"{what}: refused with HTTP {status} ({said}); this request is not retried. If the request "
        f"looks right, the API may have changed: report it with this message"
    )


# --------------------------------------------------------------------------------------------
# Client


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: httpx.Headers
    body: Any


class _TruncatedBody(Exception):
    """A 2xx body that ended early (invalid JSON although the framing looked complete)."""


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TRANSIENT = (httpx.TransportError, httpx.DecodingError, _TruncatedBody)


def untrusted_certificate(exc: BaseException, *, what: str, where: str) -> UsDirectError | None:
    """A clear, non-retried error when TLS verification failed (retrying cannot fix it)."""
    if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
        return None
    return UsDirectError(
        f"{what}: the server's TLS certificate is not trusted ({describe(exc)}). If it is signed by "
        f"your organisation's CA, set 'ca_bundle' on {where} to that CA's PEM file"
    )


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a transport failure."""
    text = scrub(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ApiClient:
    """Paced, retrying JSON calls against one API with one set of credentials."""

    def __init__(
        self,
        http: httpx.Client,
        settings: HttpSettings,
        *,
        service: str,
        where: str,
        limiter: Pacer | None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.service = service
        self.where = where
        self.limiter = limiter

    def call(
        self,
        method: str,
        path: str,
        *,
        credential: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        submission: bool = False,
        settings: HttpSettings | None = None,
        limiter: Pacer | None = None,
    ) -> ApiResponse:
        """Send one request with retries; returns a 2xx answer or raises a typed error.

        ``limiter`` replaces the client's own when the call is counted against another token.
        """
        what = f"{self.service} {method} {path}"
        budget = RetryBudget(settings or self.settings, what)
        limiter = limiter or self.limiter
        while True:
            if limiter is not None:
                limiter.acquire()
            try:
                response = self.http.request(method, path, params=params, json=json_body, headers=headers)
                body = _json_body(response)
            except _TRANSIENT as exc:
                if tls_error := untrusted_certificate(exc, what=what, where=self.where):
                    raise tls_error from None
                if submission and not isinstance(exc, _NOT_SENT):
                    raise OutcomeUnknownError(
                        f"{what}: outcome unknown ({describe(exc)}); it may have been processed. "
                        f"Look it up before submitting again"
                    ) from None
                budget.wait_or_raise(describe(exc), exhausted=TransientExhaustedError)
                continue
            status = response.status_code
            if status < 300:
                return ApiResponse(status, response.headers, body)
            if not retryable_status(status):
                raise error_for_status(status, body, what=what, credential=credential, where=self.where)
            if submission and status != 429:  # a 429 is known not to have been processed
                raise OutcomeUnknownError(
                    f"{what}: outcome unknown (HTTP {status}); it may have been processed. "
                    f"Look it up before submitting again"
                )
            budget.wait_after_status(response, limiter)

    def close(self) -> None:
        self.http.close()


def _json_body(response: httpx.Response) -> Any:
    """The decoded JSON body; a 2xx body that is not valid JSON counts as truncated."""
    content = response.content
    if not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError:
        if response.status_code < 300:
            raise _TruncatedBody(
                f"HTTP {response.status_code} body is not complete JSON ({len(content)} bytes)"
            ) from None
        return None
