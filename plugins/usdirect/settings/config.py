"""The one settings file (``include/usdirect.yaml``): schedules, targets, templates, thresholds.

Validated with pydantic on load so that a typo fails at parse time with the key that is wrong,
instead of as a mysterious task failure at 3 a.m. Import-light on purpose: DAG files load it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from usdirect.domain.errors import PermanentError
from usdirect.domain.operations import OPERATIONS, SPECS, WINDOWED
from usdirect.mapping.errors import TemplateError, TemplateIssue
from usdirect.mapping.yaml_lines import LocatedYaml, load_located_yaml
from usdirect.settings.errors import SettingValueError, did_you_mean, issue_at, validation_issues
from usdirect.settings.schedules import schedule_problem

Target = Literal["warehouse", "platform"]
_MEMORY_SIZE = r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"  # DuckDB memory_limit, e.g. 400MB, 1.5GB


class ConfigError(PermanentError, ValueError):
    """The usdirect config file is missing or invalid; the message names the file, line and key."""

    @classmethod
    def of(cls, issues: list[TemplateIssue]) -> ConfigError:
        """One error listing every problem, each as ``file:line: problem. Fix: …``."""
        return cls("\n".join(str(issue) for issue in issues))


ONE_OPERATION = "one_operation"  # validation context: operator arguments, not a settings file


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
    # This account's tables in a schema of their own on a warehouse connection that other accounts
    # use too (default: `warehouse.schema`); order, shipment and invoice tables are not keyed by account.
    warehouse_schema: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    flxpoint_conn_id: str = "flxpoint_default"
    targets: tuple[Target, ...] = ("warehouse",)
    templates: dict[str, str] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one target: warehouse, platform")
        return v

    @field_validator("templates")
    @classmethod
    def _known_template_operations(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if name not in OPERATIONS:
                raise SettingValueError(
                    f"{name!r} is not an operation, so this template would never be used",
                    f"key it by one of {', '.join(OPERATIONS)}{did_you_mean(name, list(OPERATIONS))}",
                )
        return v


class PriceGuardSettings(_Strict):
    """get_inventory / get_inventory_changes: hold back anomalous prices (``usdirect_held_changes``)."""

    enabled: bool = True
    # A cost that falls or rises by more than this share of the last good cost is held (0.6 = 60%).
    max_change_share: float = Field(default=0.6, gt=0)
    cost_floor: float = Field(default=0.05, ge=0)  # a new cost below this is held
    # The same new prices in this many runs in a row release them (1: record only, never hold).
    confirm_after_feeds: int = Field(default=2, ge=1)


class Operation(_Strict):
    schedule: str | None
    template: str
    max_reject_share: float = Field(default=0.05, ge=0, le=1)
    max_shrink_share: float = Field(default=0.20, ge=0, le=1)
    # get_inventory: a SKU the full feed lacks is archived only after this many good feeds in a
    # row (and, when set, this many hours); one short feed never archives anything.
    archive_after_missing_feeds: int = Field(default=2, ge=1)
    archive_after_missing_hours: float | None = Field(default=None, gt=0)
    # get_inventory: compare the platform's variants with what should be there every N days
    # (7 = weekly); None = only on the first publish and with the Param reconcile.
    reconcile_every_days: int | None = Field(default=None, ge=1)
    # get_inventory: a feed of more SKUs is loaded and published in ceil(skus / partition_rows)
    # slices by SKU hash, one mapped task each (None = never split).
    partition_rows: int | None = Field(default=2_000_000, ge=1)
    overlap_minutes: int = Field(default=5, ge=0)
    max_workers: int = Field(default=4, ge=1, le=32)
    straggler_age_hours: int = Field(default=72, ge=1)
    overdue_after_days: int = Field(default=30, ge=1)
    # send_orders: false = verify first; scheduled runs only dry-run, manual runs with
    # po_numbers or confirm: true submit (usdirect.pipelines.orders_gate).
    automatic: bool = False
    max_gap_hours: int = Field(default=14 * 24, ge=1)  # windowed DAGs: alert when a run reads a longer gap
    price_guard: PriceGuardSettings = PriceGuardSettings()

    @field_validator("schedule")
    @classmethod
    def _cron_or_preset(cls, v: str | None) -> str | None:
        problem = schedule_problem(v, windowed=False) if v is not None else None
        if problem:
            raise SettingValueError(*problem)
        return v


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


class RateLimitSettings(_Strict):
    """Where the hooks keep each token's request schedule.

    ``process``: per worker process (threads share it). ``redis``: one schedule per token shared by
    every process and worker through the Redis of Airflow connection ``redis_conn_id``.
    """

    backend: Literal["process", "redis"] = "process"
    redis_conn_id: str = Field(default="redis_default", min_length=1)


class MemorySettings(_Strict):
    """DuckDB memory caps, sized from a worker's budget: past them DuckDB spills to ``temp_directory``."""

    # The in-process DuckDB that maps, compares and hashes inventory rows (one per task).
    engine_limit: str = Field(default="400MB", pattern=_MEMORY_SIZE)
    # Default cap of a DuckDB warehouse connection (its extra "memory_limit" overrides it).
    warehouse_limit: str = Field(default="400MB", pattern=_MEMORY_SIZE)
    temp_directory: str | None = None  # spill folder (None: the system temp folder)


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
    rate_limit: RateLimitSettings = RateLimitSettings()
    memory: MemorySettings = MemorySettings()
    accounts: tuple[Account, ...]
    operations: dict[str, Operation]

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, v: dict[str, Operation], info: ValidationInfo) -> dict[str, Operation]:
        unknown = sorted(set(v) - set(OPERATIONS))
        if unknown:
            raise SettingValueError(
                f"unknown operation(s) {unknown}",
                f"use the operation names {', '.join(OPERATIONS)}"
                f"{did_you_mean(unknown[0], list(OPERATIONS))}",
                ("operations", unknown[0]),
            )
        missing = sorted(set(OPERATIONS) - set(v))
        if missing and not (info.context or {}).get(ONE_OPERATION):
            raise SettingValueError(
                f"missing operation(s) {missing}: every operation needs a schedule and template",
                f"add `{missing[0]}:` under operations with its schedule and template "
                "(copy it from the bundled include/usdirect.yaml)",
            )
        for name in sorted(WINDOWED & set(v)):
            schedule = v[name].schedule
            problem = schedule_problem(schedule, windowed=True) if schedule is not None else None
            if problem:
                raise SettingValueError(*problem, ("operations", name, "schedule"))
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

    def warehouse_schema(self, account: Account) -> str | None:
        """The schema of the account's tables: its own ``warehouse_schema``, else ``warehouse.schema``."""
        return account.warehouse_schema or self.warehouse.schema_

    def pool(self, account: Account) -> str:
        """The Airflow pool capping the account's concurrent API-calling tasks."""
        return f"usdirect_{account.id}"

    def dag_id(self, account: Account, operation: str) -> str:
        """Plain ids for the first account, account-qualified ids for the others."""
        suffix = SPECS[operation].dag_suffix
        if account == self.accounts[0]:
            return f"usdirect_{suffix}"
        return f"usdirect_{account.id}_{suffix}"


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
def _load(path: Path, version: tuple[int, int, int]) -> Config:
    """Read and validate once per file version (modification time, size, inode), not per DAG."""
    try:
        located = load_located_yaml(path)  # refuses duplicate keys, records each key's line
    except TemplateError as exc:
        raise ConfigError.of(exc.issues) from None
    raw = located.data if located.data is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError.of(
            [located.issue((), "expected a mapping at the top level", "start with `accounts:`")]
        )
    try:
        cfg = Config.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise ConfigError.of(validation_issues(located, exc, Config)) from None
    issues = _account_issues(cfg, located)
    if issues:
        raise ConfigError.of(issues)
    return cfg


def _account_issues(cfg: Config, located: LocatedYaml) -> list[TemplateIssue]:
    if not cfg.accounts:
        return [
            issue_at(located, ("accounts",), "'accounts' is empty", "add at least one account with an `id:`")
        ]
    issues, seen = [], set()
    for index, account in enumerate(cfg.accounts):
        if account.id in seen:
            issues.append(
                issue_at(
                    located,
                    ("accounts", index, "id"),
                    f"account id {account.id!r} is used twice: 'accounts' needs unique ids",
                    "give each account its own id (DAG ids, pools and warehouse rows are keyed by it)",
                )
            )
        seen.add(account.id)
    return issues + _shared_warehouse_issues(cfg, located)


def _shared_warehouse_issues(cfg: Config, located: LocatedYaml) -> list[TemplateIssue]:
    """Refuse two accounts on one warehouse connection and schema.

    Fulfillment requests, shipments and invoices are keyed by PO, shipment and invoice number, not
    by account: two accounts sharing those tables would submit each other's orders.
    """
    issues: list[TemplateIssue] = []
    owner: dict[tuple[str, str | None], str] = {}
    for index, account in enumerate(cfg.accounts):
        place = (account.warehouse_conn_id, cfg.warehouse_schema(account))
        first = owner.setdefault(place, account.id)
        if first == account.id:
            continue
        schema = f"schema {place[1]!r}" if place[1] else "its default schema"
        issues.append(
            issue_at(
                located,
                ("accounts", index, "warehouse_conn_id"),
                f"account {account.id!r} shares warehouse connection {place[0]!r} and {schema} with "
                f"account {first!r}: order, shipment and invoice tables are not keyed by account, so "
                "one account would send or overwrite the other's orders",
                f"give account {account.id!r} its own `warehouse_schema:` (e.g. usdirect_{account.id}) "
                "or its own warehouse_conn_id",
            )
        )
    return issues


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the config; a DAG file's accounts share one read, an edit is read anew."""
    p = Path(path) if path else default_config_path()
    if not p.exists():
        raise ConfigError(f"usdirect config not found at {p}: set USDIRECT_CONFIG or create the file")
    p = p.resolve()
    stat = p.stat()  # an edit changes mtime or size; an editor's atomic save also the inode
    return _load(p, (stat.st_mtime_ns, stat.st_size, stat.st_ino))


def operation_config(
    path: Path,
    operation: str,
    account: dict[str, object],
    settings: dict[str, object],
    **sections: dict[str, object],
) -> Config:
    """The settings of one operation of one account, from an operator's arguments instead of a file.

    Same model, same defaults and checks as the settings file; ``path`` stands in for the file's
    location (relative template and staging paths resolve against its folder). ``sections`` are
    top-level sections (``staging``, ``memory``, ``warehouse``, ``alerts``, ...).
    """
    data = {"path": path, "accounts": [account], "operations": {operation: settings}, **sections}
    try:
        return Config.model_validate(data, context={ONE_OPERATION: True})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid {operation} operator arguments: {problems}") from None
