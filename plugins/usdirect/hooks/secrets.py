"""The hooks' credentials: registered for redaction, handed to Airflow's masker, kept out of httpx's logs."""

from __future__ import annotations

import logging

from usdirect.domain import redaction

_LOGGERS = ("httpx", "httpcore")


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its stripped form) in Airflow's logs and in every message the package builds."""
    from airflow.sdk.log import mask_secret

    for form in redaction.register(value):
        mask_secret(form)


class _ScrubFilter(logging.Filter):
    """httpx logs every request URL at INFO; the feed URL is a secret, so scrub the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redaction.scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = _ScrubFilter()


def scrub_http_logs() -> None:
    """Attach the scrubbing filter to httpx's loggers; idempotent (a logger holds a filter once)."""
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)
