"""Typed errors raised by the US Direct and Flxpoint hooks, and the mapping of error answers to them.

Every message says what went wrong and what to do about it, so that the text shown in the
Airflow UI is enough to act on. Messages never contain a token or the feed URL: callers build
them from credential *names*, HTTP statuses, error codes and field paths only.
"""

from __future__ import annotations

from typing import Any

from usdirect.domain.errors import PermanentError
from usdirect.domain.redaction import scrub


class UsDirectError(Exception):
    """Base class of every error the hooks raise on purpose."""


class ConnectionConfigError(UsDirectError, PermanentError):
    """The Airflow connection is missing a field or holds a value that cannot be used."""


class AuthenticationError(UsDirectError, PermanentError):
    """A credential was missing, rejected (401) or lacks access to the resource (403)."""

    def __init__(self, credential: str, status: int, message: str | None = None) -> None:
        self.credential = credential
        self.status = status
        if message is None:
            if status == 403:
                message = (
                    f"{credential} has no access to this resource (403): check that the account "
                    f"behind the {credential} is entitled to it, or ask the supplier to enable it"
                )
            else:
                message = (
                    f"{credential} rejected ({status}): re-enter the {credential} on the connection "
                    f"and run Test Connection"
                )
        super().__init__(message)


class ValidationError(UsDirectError):
    """The server refused the request body (422); ``details`` lists each bad field."""

    def __init__(self, details: list[dict[str, Any]], message: str | None = None) -> None:
        self.details = details
        if message is None:
            message = "request rejected as invalid (422): " + format_details(details)
        super().__init__(message)


class NotFoundError(UsDirectError):
    """The resource does not exist (404)."""


class DuplicateError(UsDirectError):
    """The resource already exists (409); ``existing_id`` identifies it when the server says."""

    def __init__(self, existing_id: str | None, message: str | None = None) -> None:
        self.existing_id = existing_id
        if message is None:
            message = f"already exists (409), existing id {existing_id or 'not given'}"
        super().__init__(message)


class RetryExhaustedError(UsDirectError):
    """A call failed on every attempt its retry budget allowed; ``last`` is the final failure."""

    def __init__(self, message: str, last: str) -> None:
        self.last = last
        super().__init__(message)


class RateLimitExhaustedError(RetryExhaustedError):
    """Still answered 429 after the retry budget was spent."""


class TransientExhaustedError(RetryExhaustedError):
    """5xx, connection failures, timeouts or truncated bodies outlasted the retry budget."""


class RateLimitBackendError(UsDirectError):
    """The shared rate limit's Redis did not answer; transient, so the task's retries follow."""


class OutcomeUnknownError(UsDirectError):
    """A submission may or may not have been processed (timeout, reset, 5xx, truncated answer).

    The caller must look the resource up before trying again; the hook never resubmits blindly.
    """


def format_details(details: list[dict[str, Any]]) -> str:
    """``field: message; field: message`` from an error body's ``details`` list."""
    parts = []
    for item in details:
        field = item.get("field")
        text = item.get("message") or item.get("code") or ""
        parts.append(f"{field}: {text}" if field else str(text))
    return "; ".join(p for p in parts if p) or "no details given"


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
