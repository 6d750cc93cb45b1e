"""The retry policy of one logical call: what is worth another attempt, how long to wait, when to stop.

An attempt that is worth repeating raises :class:`Retryable`; any other error ends the call at
once (a submission whose outcome is unknown raises ``OutcomeUnknownError``, never ``Retryable``).
:func:`retrying` runs the attempts with tenacity: exponential backoff with jitter, or the server's
Retry-After; capped in attempts and in total time, counting the wait that would come next; when
the budget is spent it raises the typed error the last failure calls for.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import NoReturn

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay

from usdirect.domain import metrics
from usdirect.hooks.errors import RateLimitExhaustedError, RetryExhaustedError, TransientExhaustedError
from usdirect.hooks.http_settings import HttpSettings
from usdirect.hooks.ratelimit import Pacer

log = logging.getLogger(__name__)


class Retryable(Exception):
    """An attempt that failed in a way another attempt may not: why, and the server's wait if it gave one."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        exhausted: type[RetryExhaustedError] = TransientExhaustedError,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.exhausted = exhausted


def retrying(settings: HttpSettings, what: str, *, service: str) -> Retrying:
    """The tenacity controller of one call of ``what``: call it with the attempt function.

    Each failed attempt of ``service`` (US Direct, Flxpoint) is counted: its 429s, and its retries.
    """

    def last(state: RetryCallState) -> Retryable:
        failure = state.outcome.exception() if state.outcome else None
        assert isinstance(failure, Retryable)  # tenacity waits and stops only after a retried failure
        return failure

    def wait(state: RetryCallState) -> float:
        retry_after = last(state).retry_after
        if retry_after is not None:  # the server's wait, jittered so that threads do not return in step
            return retry_after + random.uniform(0, min(1.0, settings.backoff_base))
        ceiling = min(settings.backoff_max, settings.backoff_base * 2 ** (state.attempt_number - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def count(state: RetryCallState) -> None:
        if last(state).exhausted is RateLimitExhaustedError:  # only a 429 is retried as rate-limited
            metrics.incr(metrics.http_metric(service, metrics.HTTP_THROTTLED))

    def announce(state: RetryCallState) -> None:
        metrics.incr(metrics.http_metric(service, metrics.HTTP_RETRIES))
        log.warning(
            "%s: %s; retry %d/%d in %.2f s",
            what,
            last(state).reason,
            state.attempt_number,
            settings.max_attempts - 1,
            state.upcoming_sleep,
        )

    def give_up(state: RetryCallState) -> NoReturn:
        failure = last(state)
        fix = (
            "something else may be using the same token: lower 'rate_limit' on the connection, or "
            "raise 'max_retry_time' to wait longer"
            if failure.exhausted is RateLimitExhaustedError
            else "the service or the network is unstable; the task's own retries will try again, "
            "and 'max_attempts' / 'max_retry_time' on the connection allow a longer wait per call"
        )
        elapsed = state.seconds_since_start or 0.0
        raise failure.exhausted(
            f"{what} gave up after {state.attempt_number} attempt(s) in {elapsed:.1f} s "
            f"(last: {failure.reason}): {fix}",
            last=failure.reason,
        ) from None  # the transport error's own text is not ours to vouch for

    return Retrying(
        retry=retry_if_exception_type(Retryable),
        wait=wait,
        after=count,
        stop=stop_after_attempt(settings.max_attempts) | stop_before_delay(settings.max_retry_time),
        before_sleep=announce,
        retry_error_callback=give_up,
    )


def retryable_status(status: int) -> bool:
    """429 and 5xx are worth another attempt; other 4xx would fail the same way again."""
    return status == 429 or status >= 500


def retry_for_status(response: httpx.Response, limiter: Pacer | None = None) -> Retryable:
    """The retry of a 429 (holding back every user of the token) or a 5xx, honouring Retry-After."""
    retry_after = retry_after_seconds(response.headers)
    if response.status_code == 429:
        if retry_after and limiter is not None:
            limiter.defer(retry_after)
        return Retryable(
            "HTTP 429 Too Many Requests", retry_after=retry_after, exhausted=RateLimitExhaustedError
        )
    return Retryable(f"HTTP {response.status_code}", retry_after=retry_after)


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
