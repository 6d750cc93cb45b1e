"""The one settings file (``include/usdirect.yaml``): schedules, targets, templates, thresholds.

Validated with pydantic on load so that a typo fails at parse time with the key that is wrong,
instead of as a mysterious task failure at 3 a.m. Import-light on purpose: DAG files load it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from usdirect.errors import PermanentError

Target = Literal["warehouse", "platform"]
OPERATIONS = ("get_inventory", "get_inventory_changes", "send_orders", "get_shipments", "get_invoices")


class ConfigError(PermanentError, ValueError):
    """The usdirect config file is missing or invalid; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Staging(_Strict):
    url: str | None = None
    conn_id: str | None = None


class WarehouseSettings(_Strict):
    schema_: str | None = Field(default=None, alias="schema")


class Account(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    usdirect_conn_id: str = "usdirect_default"
    pool_slots: int = Field(default=3, ge=1, le=64)
    warehouse_conn_id: str = "usdirect_warehouse"
    flxpoint_conn_id: str = "flxpoint_default"
    targets: tuple[Target, ...] = ("warehouse",)
    templates: dict[str, str] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one target: warehouse, platform")
        return v


class Operation(_Strict):
    schedule: str | None
    template: str
    max_reject_share: float = Field(default=0.05, ge=0, le=1)
    max_shrink_share: float = Field(default=0.20, ge=0, le=1)
    overlap_minutes: int = Field(default=5, ge=0)
    max_workers: int = Field(default=4, ge=1, le=32)
    straggler_age_hours: int = Field(default=72, ge=1)
    overdue_after_days: int = Field(default=30, ge=1)


class EmailChannel(_Strict):
    """Email through an SMTP connection (SmtpNotifier)."""

    type: Literal["email"]
    conn_id: str = "smtp_default"
    to: tuple[str, ...] = Field(min_length=1)
    from_email: str | None = None


class SlackChannel(_Strict):
    """A Slack incoming webhook connection of type ``slackwebhook`` (SlackWebhookNotifier)."""

    type: Literal["slack"]
    conn_id: str = "slack_default"


class HttpChannel(_Strict):
    """A generic webhook: JSON POST to an ``http`` connection's URL plus ``endpoint`` (HttpNotifier)."""

    type: Literal["http"]
    conn_id: str = "http_default"
    endpoint: str | None = None


AlertChannel = Annotated[EmailChannel | SlackChannel | HttpChannel, Field(discriminator="type")]


class TaskDefaults(_Strict):
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_seconds: int = Field(default=60, ge=0)


class Alerts(_Strict):
    on_failure: bool = True
    needs_attention: bool = True
    channels: tuple[AlertChannel, ...] = ()


class Config(_Strict):
    path: Path
    staging: Staging = Staging()
    warehouse: WarehouseSettings = WarehouseSettings()
    tasks: TaskDefaults = TaskDefaults()
    alerts: Alerts = Alerts()
    accounts: tuple[Account, ...]
    operations: dict[str, Operation]

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, v: dict[str, Operation]) -> dict[str, Operation]:
        unknown = sorted(set(v) - set(OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operation(s) {unknown}; known: {list(OPERATIONS)}")
        missing = sorted(set(OPERATIONS) - set(v))
        if missing:
            raise ValueError(f"missing operation(s) {missing}: every operation needs a schedule and template")
        return v

    def targets(self, account: Account) -> tuple[str, ...]:
        """Targets for an account, after the USDIRECT_TARGETS process override."""
        override = os.environ.get("USDIRECT_TARGETS")
        if not override:
            return account.targets
        targets = tuple(t.strip() for t in override.split(",") if t.strip())
        bad = [t for t in targets if t not in ("warehouse", "platform")]
        if bad or not targets:
            raise ConfigError(f"USDIRECT_TARGETS={override!r}: use a comma list of warehouse, platform")
        return targets

    def template_path(self, account: Account, operation: str) -> Path:
        """The mapping template for an operation; an account may override it."""
        rel = account.templates.get(operation) or self.operations[operation].template
        return (self.path.parent / rel).resolve()

    def staging_url(self) -> str:
        if self.staging.url:
            if "://" in self.staging.url or self.staging.url.startswith("/"):
                return self.staging.url
            return str((self.path.parent / self.staging.url).resolve())
        home = os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))
        return str(Path(home) / "usdirect-staging")

    def pool(self, account: Account) -> str:
        """The Airflow pool capping the account's concurrent API-calling tasks."""
        return f"usdirect_{account.id}"

    def dag_id(self, account: Account, operation: str) -> str:
        """Plain ids for the first account, account-qualified ids for the others."""
        if account == self.accounts[0]:
            return f"usdirect_{operation}"
        return f"usdirect_{account.id}_{operation}"


def default_config_path() -> Path:
    env = os.environ.get("USDIRECT_CONFIG")
    if env:
        return Path(env)
    candidates = [
        Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "include" / "usdirect.yaml",
        Path(__file__).resolve().parents[2] / "include" / "usdirect.yaml",
    ]
    return next((p for p in candidates if p.exists()), candidates[0])


@lru_cache(maxsize=8)
def _load(path: Path, mtime: float) -> Config:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        cfg = Config.model_validate({**raw, "path": path})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"{path}: {problems}") from None
    ids = [a.id for a in cfg.accounts]
    if not ids or len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: 'accounts' needs at least one entry and unique ids, got {ids}")
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the config (cached per file and modification time)."""
    p = Path(path) if path else default_config_path()
    if not p.exists():
        raise ConfigError(f"usdirect config not found at {p}: set USDIRECT_CONFIG or create the file")
    p = p.resolve()
    return _load(p, p.stat().st_mtime)
