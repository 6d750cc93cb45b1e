"""Timeouts, TLS and retry budget of one HTTP connection, read from its extras."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usdirect.hooks.errors import ConnectionConfigError


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
