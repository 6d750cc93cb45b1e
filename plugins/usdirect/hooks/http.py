"""The resilient HTTP client both hooks stand on.

One ``httpx.Client`` per hook (connection reuse, explicit connect/read timeouts, TLS verified
against the system store or the connection's ``ca_bundle``) wrapped by :class:`ApiClient`, which
paces requests through the per-token rate limiter and retries what is safe to retry
(``hooks.retry``): 429 (honouring Retry-After), 5xx, connection errors, read timeouts and
truncated bodies. Other 4xx are mapped to typed errors at once (``hooks.errors``). Submissions
(``submission=True``) are only retried when the request provably was not processed (connection
never opened, or 429).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from usdirect import __version__
from usdirect.hooks.errors import (
    ConnectionConfigError,
    OutcomeUnknownError,
    describe,
    error_for_status,
    untrusted_certificate,
)
from usdirect.hooks.http_settings import HttpSettings
from usdirect.hooks.ratelimit import Pacer
from usdirect.hooks.retry import Retryable, retry_for_status, retryable_status, retrying

USER_AGENT = f"usdirect-airflow/{__version__}"


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


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: httpx.Headers
    body: Any


class _TruncatedBody(Exception):
    """A 2xx body that ended early (invalid JSON although the framing looked complete)."""


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TRANSIENT = (httpx.TransportError, httpx.DecodingError, _TruncatedBody)


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
        limiter = limiter or self.limiter

        def attempt() -> ApiResponse:
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
                raise Retryable(describe(exc)) from None
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
            raise retry_for_status(response, limiter)

        return retrying(settings or self.settings, what, service=self.service)(attempt)

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
