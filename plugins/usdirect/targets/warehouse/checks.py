"""After-load quality checks: each load checks the rows it is responsible for inside its own
transaction, before it commits.

They are declared in the shapes of common-sql's ``SQLColumnCheckOperator`` (``column_mapping``:
column -> check -> condition, with its check names such as ``sku_null_check`` and
``quantity_min``) and ``SQLTableCheckOperator`` (``checks``: name -> statement), but run by the
load step instead of by those operators in a task of their own: such a task could only look at
what is already committed (a failure could no longer keep a bad load from becoming the state that
readers and the platform publish see), and on the default DuckDB file it would be one more process
wanting the file's single write lock, which ``Warehouse`` waits for and the providers' hooks do not.

A load evaluates all checks of a table in one aggregate query; when any fails it raises
``QualityCheckFailed`` naming each failed check, its table, the observed value and the fix. The
load's transaction rolls back (the last good state stays, nothing half-written) and the task fails
without retries: the data is what it is until a person acts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usdirect.domain.errors import PermanentError
from usdirect.engine.base import sql_literal
from usdirect.targets.warehouse.sql import Warehouse

log = logging.getLogger(__name__)

# column -> check -> {condition: value, "fix": ..., "partition_clause": ..., "skip_on": ...}; a
# condition's value is a number, or the name of a figure of the load (its counts) when it is a
# string. A check with a ``partition_clause`` looks at the checked rows that match it only (as in
# SQLColumnCheckOperator); ``skip_on`` names dialects whose own constraint already holds it.
ColumnMapping = Mapping[str, Mapping[str, Mapping[str, Any]]]
# name -> {"observed": aggregate SQL, condition: value, "fix": ...}
TableChecks = Mapping[str, Mapping[str, Any]]

# SQLColumnCheckOperator.column_checks, with empty tables reading 0 rather than NULL.
_COLUMN_SQL = {
    "null_check": "COALESCE(SUM(CASE WHEN {column} IS NULL THEN 1 ELSE 0 END), 0)",
    "unique_check": "COUNT({column}) - COUNT(DISTINCT {column})",
    "min": "MIN({column})",
    "max": "MAX({column})",
}
_CONDITIONS = {"equal_to": "=", "geq_to": ">=", "leq_to": "<="}

_NEGATIVE_FIX = (
    "the feed sent a negative {column}: ask US Direct to correct it, or make the inventory template "
    "reject such rows (a 'reject_if' rule with 'lt: 0', as the shipped one has for quantity and "
    "cost), then clear the task"
)

# usdirect_inventory, over one account's rows (one partition's, for a partitioned full feed).
INVENTORY_COLUMNS: ColumnMapping = {
    "sku": {
        "null_check": {
            "equal_to": 0,
            "fix": "a row without a SKU cannot be published or updated: delete it, or restore the "
            "column's NOT NULL constraint (the table was altered by hand), then clear the task",
        },
        # Among the rows this load inserted: the delta inserts only SKUs it found absent, so a
        # duplicate of an older row needs another writer (a full feed's active_rows counts it).
        # A distinct count of the whole account would cost 3 s at 10,000,000 rows on DuckDB. On
        # Postgres the unique index on (account, sku) refuses any duplicate, so it is not run
        # there (a distinct count also keeps Postgres from scanning in parallel: 5.8 s, not 2.2 s).
        "unique_check": {
            "equal_to": 0,
            "partition_clause": "first_seen_at = {now} AND run_id = {run_id}",
            "skip_on": ("postgres",),
            "fix": "the load inserted a SKU twice (another process inserted it during the load, or "
            "the feed's SKUs slipped past de-duplication): keep one row of each (account, sku), "
            "delete the others, then clear the task",
        },
    },
    "quantity": {"min": {"geq_to": 0, "fix": _NEGATIVE_FIX.format(column="quantity")}},
    "cost": {"min": {"geq_to": 0, "fix": _NEGATIVE_FIX.format(column="cost")}},
    "msrp": {"min": {"geq_to": 0, "fix": _NEGATIVE_FIX.format(column="msrp")}},
    "map": {"min": {"geq_to": 0, "fix": _NEGATIVE_FIX.format(column="map")}},
}
_RECONCILE_FIX = (
    "the table does not hold what the load counted; another process wrote these rows during the "
    "load, or the load has a defect: report it with the task's log, then clear the task"
)
# The load's own counts against the rows it stamped (``{run_id}``, ``{now}``: this load's). Each
# load stamps the time it started, so run id and time single out its rows; two loads of an account
# at the very same microsecond (only a test does that) would count each other's.
INVENTORY_RECONCILIATION: TableChecks = {
    "rows_inserted": {
        "observed": "COUNT(*) FILTER (WHERE first_seen_at = {now} AND run_id = {run_id})",
        "equal_to": "inserted",
        "fix": _RECONCILE_FIX,
    },
    "rows_changed": {
        "observed": "COUNT(*) FILTER (WHERE last_changed_at = {now} AND run_id = {run_id})",
        "equal_to": "changed",
        "fix": _RECONCILE_FIX,
    },
}
# A full feed lists every SKU the account offers: what stays active is what the feed offers plus
# the SKUs it lacks that the absence rule does not archive yet.
INVENTORY_FULL_FEED: TableChecks = {
    "active_rows": {
        "observed": "COUNT(*) FILTER (WHERE NOT archived)",
        "equal_to": "feed_active_plus_missing",
        "fix": _RECONCILE_FIX,
    },
}

# usdirect_shipments, over the shipments of the load's batch.
SHIPMENT_CHECKS: TableChecks = {
    "tracking_when_shipped": {
        "observed": "COALESCE(SUM(CASE WHEN (LOWER(status) IN ('in transit', 'delivered') OR "
        "LOWER(supplier_status) IN ('in_transit', 'delivered')) "
        "AND COALESCE(TRIM(tracking_number), '') = '' THEN 1 ELSE 0 END), 0)",
        "equal_to": 0,
        "fix": "US Direct reports shipments in transit or delivered without a tracking number (the "
        "platform requires one): ask US Direct for the tracking numbers, or check that the "
        "shipments template maps 'tracking_number', then clear the task",
    },
}

# usdirect_invoices, over the invoices of the load's batch. The contract: total = sum of the lines'
# amount + shipping + fees + tax. An invoice that does not add up is kept and flagged (Get Invoice
# sets check_problem), so the check is that none is left unflagged.
INVOICE_CHECKS: TableChecks = {
    "total_matches_lines": {
        "observed": "COALESCE(SUM(CASE WHEN check_problem IS NULL AND ABS(total - ("
        "COALESCE(l.amounts, 0) + COALESCE(shipping, 0) + COALESCE(fees, 0) + COALESCE(tax, 0)"
        ")) > 0.01 THEN 1 ELSE 0 END), 0)",
        "equal_to": 0,
        "fix": "the stored lines of an unflagged invoice do not add up to its total: lines were "
        "lost on the way (two lines with one line_number keep only one) or changed after Get "
        "Invoice checked them; compare the invoice at US Direct (GET /v1/invoices/{po}) with "
        "usdirect_invoice_lines, correct the template or ask US Direct, then clear the task",
    },
}


@dataclass(frozen=True)
class Check:
    """One check: an aggregate over the checked rows, compared with a number or a load figure."""

    name: str
    observed: str
    condition: str
    expected: int | str
    fix: str

    def wanted(self, figures: Mapping[str, int]) -> int:
        return figures[self.expected] if isinstance(self.expected, str) else self.expected

    def passes(self, value: Any, figures: Mapping[str, int]) -> bool:
        if value is None:  # MIN/MAX of rows that all lack the column: nothing to compare
            return True
        wanted = self.wanted(figures)
        if self.condition == "equal_to":
            return bool(value == wanted)
        return bool(value >= wanted) if self.condition == "geq_to" else bool(value <= wanted)


def _condition(name: str, spec: Mapping[str, Any]) -> tuple[str, int | str]:
    found = [(k, v) for k, v in spec.items() if k in _CONDITIONS]
    if len(found) != 1:
        raise ValueError(f"check {name!r} needs exactly one of {sorted(_CONDITIONS)}, has {dict(spec)}")
    return found[0]


def column_checks(mapping: ColumnMapping, rows: str, dialect: str, **values: str) -> list[Check]:
    """Checks from a ``column_mapping`` over ``rows`` (a ``FROM`` clause with its ``WHERE``), named
    ``<column>_<check>`` as SQLColumnCheckOperator names them; ``values`` fill the ``{...}`` fields
    of their partition clauses."""
    out = []
    for column, checks in mapping.items():
        for kind, spec in checks.items():
            if dialect in spec.get("skip_on", ()):
                continue
            name = f"{column}_{kind}"
            observed = _COLUMN_SQL[kind].format(column=column)
            if "partition_clause" in spec:
                # A subquery of its own: DuckDB filters the few rows first (0.15 s at 10,000,000
                # rows, where an aggregate FILTER costs 1.9 s).
                clause = spec["partition_clause"].format(**values)
                observed = f"(SELECT {observed} FROM {rows} AND {clause})"
            out.append(Check(name, observed, *_condition(name, spec), spec["fix"]))
    return out


def table_checks(checks: TableChecks, **values: str) -> list[Check]:
    """Checks from a ``checks`` dict; ``values`` fill the ``{...}`` fields of their SQL."""
    return [
        Check(name, spec["observed"].format(**values), *_condition(name, spec), spec["fix"])
        for name, spec in checks.items()
    ]


@dataclass(frozen=True)
class Failure:
    check: Check
    observed: Any
    wanted: int

    def __str__(self) -> str:
        op = _CONDITIONS[self.check.condition]
        return (
            f"{self.check.name}: observed {self.observed}, expected {op} {self.wanted}. Fix: {self.check.fix}"
        )


class QualityCheckFailed(PermanentError):
    """After-load checks failed; the load was rolled back. The message names every failed check."""

    def __init__(self, table: str, scope: str, failures: list[Failure]) -> None:
        self.table, self.failures = table, failures
        names = ", ".join(f.check.name for f in failures)
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(
            f"After-load check(s) {names} failed on {table} ({scope}); the load was rolled back, "
            f"so the table keeps its last good state:\n{lines}"
        )


def run_checks(
    wh: Warehouse,
    conn: Any,
    table: str,
    rows: str,
    checks: list[Check],
    figures: Mapping[str, int] | None = None,
    scope: str = "",
) -> dict[str, Any]:
    """Evaluate ``checks`` over ``rows`` (a ``FROM`` clause) in one query; raise
    ``QualityCheckFailed`` naming every failed one. Returns the observed values by check name."""
    figures = figures or {}
    values = wh.fetchall(conn, f"SELECT {', '.join(c.observed for c in checks)} FROM {rows}")[0]
    failures = [
        Failure(c, value, c.wanted(figures))
        for c, value in zip(checks, values, strict=True)
        if not c.passes(value, figures)
    ]
    if failures:
        raise QualityCheckFailed(table, scope, failures)
    observed = {c.name: value for c, value in zip(checks, values, strict=True)}
    log.info("after-load checks passed on %s (%s): %s", table, scope, observed)
    return observed


def stamp_values(run_id: str, now: dt.datetime) -> dict[str, str]:
    """The SQL literals of a load's stamp (the ``{run_id}`` and ``{now}`` of its checks)."""
    return {"run_id": sql_literal(run_id), "now": f"CAST({sql_literal(now.isoformat())} AS TIMESTAMPTZ)"}


def _label(wh: Warehouse, table: str) -> str:
    return f"{wh.schema}.{table}" if wh.schema else table


def check_inventory(
    wh: Warehouse,
    conn: Any,
    table: str,
    account: str,
    stamp: tuple[str, dt.datetime],
    counts: Mapping[str, int],
    partition_sql: str = "",
    feed_active: int | None = None,
) -> dict[str, Any]:
    """Check one account's inventory rows (``partition_sql``: one partition's) after a load whose
    ``counts`` (``LoadCounts.as_dict()``) and ``stamp`` (run id, time) are given; ``feed_active``:
    the SKUs a full feed offers (not archived), for the full feed's ``active_rows`` check."""
    rows = f"{wh.table(table)} WHERE account = {sql_literal(account)}{partition_sql}"
    values = stamp_values(*stamp)
    checks = column_checks(INVENTORY_COLUMNS, rows, wh.dialect, **values) + table_checks(
        INVENTORY_RECONCILIATION, **values
    )
    figures = dict(counts)
    figures["changed"] = counts["inserted"] + counts["updated"] + counts["revived"] + counts["archived"]
    if feed_active is not None:
        checks += table_checks(INVENTORY_FULL_FEED)
        figures["feed_active_plus_missing"] = feed_active + counts["missing"]
    scope = f"account {account!r}" + (", this partition" if partition_sql else "")
    return run_checks(wh, conn, _label(wh, table), rows, checks, figures, scope)


def check_batch(
    wh: Warehouse, conn: Any, table: str, key: str, staged: str, checks: TableChecks, join: str = ""
) -> dict[str, Any]:
    """Check the rows (``t``) of ``table`` that a record batch (staged as ``staged``) loaded;
    ``join``: what else the checks read, joined to ``t``."""
    rows = f"{wh.table(table)} AS t{join} WHERE t.{key} IN (SELECT {key} FROM {staged})"
    return run_checks(wh, conn, _label(wh, table), rows, table_checks(checks), scope="the rows of this batch")


def check_invoices(wh: Warehouse, conn: Any, table: str, lines_table: str, staged: str) -> dict[str, Any]:
    """``INVOICE_CHECKS`` over the invoices of a batch, with their stored lines' amounts summed."""
    lines = (
        f" LEFT JOIN (SELECT invoice_number, SUM(amount) AS amounts FROM {wh.table(lines_table)} "
        f"WHERE invoice_number IN (SELECT invoice_number FROM {staged}) GROUP BY invoice_number) l "
        "ON l.invoice_number = t.invoice_number"
    )
    return check_batch(wh, conn, table, "invoice_number", staged, INVOICE_CHECKS, lines)
