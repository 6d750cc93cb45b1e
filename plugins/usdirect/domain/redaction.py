"""Redaction: the one place that decides what of a text is secret and replaces it with ``***``.

Hook messages, httpx's log lines and alerts all go through here. Credentials are registered as
the hooks read them (:func:`register`); every message the package builds is scrubbed of them
(:func:`scrub`). Alerts leave Airflow for mail and chat, so :func:`redact` also drops every URL's
query string: a library's error text can quote a feed URL whose key this process never read.

Airflow's own masker (``airflow.sdk.log.mask_secret``) is fed the same values by the hooks and
masks task logs. It is not the registry here: it skips values shorter than its configurable
minimum (5 by default) and the word "airflow", the SDK offers no public ``redact`` to scrub a
message with, and it knows nothing of URL query strings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
MIN_URL_PART = 5  # shorter query values (e.g. "1") would mask unrelated text everywhere
MIN_GIVEN_SECRET = 4  # alert secrets are every string extra of a connection, "5" included
_URL_QUERY = re.compile(r"(\bhttps?://[^\s?#'\"]+)\?[^\s'\"]*")

_registered: set[str] = set()
_lock = threading.Lock()


def register(value: str | None) -> list[str]:
    """Remember ``value`` (and its stripped form) as secret; returns the forms to mask elsewhere."""
    if not value:
        return []
    forms = sorted({value, value.strip()} - {""})
    with _lock:
        _registered.update(forms)
    return forms


def url_secrets(url: str) -> list[str]:
    """What a URL with credentials in it hides: itself, its password and its longer query values."""
    parts = urlsplit(url.strip())
    found = [url]
    if parts.password:
        found.append(parts.password)
    found += [v for _, v in parse_qsl(parts.query, keep_blank_values=False) if len(v) >= MIN_URL_PART]
    return found


def _replace(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):  # longest first: no partial leftovers
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _lock:
        registered = list(_registered)
    return _replace(text, registered)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL query strings, ``secrets`` (4 characters or more) or registered secrets."""
    text = _URL_QUERY.sub(rf"\1?{MASK}", text)
    return scrub(_replace(text, (s for s in secrets if s and len(s) >= MIN_GIVEN_SECRET)))
