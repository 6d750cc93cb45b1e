"""Typed errors raised by the US Direct and Flxpoint hooks.

Every message says what went wrong and what to do about it, so that the text shown in the
Airflow UI is enough to act on. Messages never contain a token or the feed URL: callers build
them from credential *names*, HTTP statuses, error codes and field paths only.
"""

from __future__ import annotations

from typing import Any

from usdirect.domain.errors import PermanentError


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
