"""Compiled mapping plans and their vectorised execution over an all-text Arrow table."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from usdirect.mapping.kernels import (
    Failure,
    blank_to_null,
    cast_text,
    format_columns,
    join_skipping_nulls,
    strip,
    strip_control,
)

TextStep = Callable[[pa.Array], tuple[pa.Array, Failure | None]]
NumberStep = Callable[[pa.Array], pa.Array]
RowTest = Callable[[dict[str, pa.Array]], pa.BooleanArray]
log = logging.getLogger(__name__)
PARALLEL_ROWS = 50_000  # below this, thread hand-off costs more than it saves


@dataclass(frozen=True)
class FieldPlan:
    """How one target column is computed. `parts` holds literal text (str) and column names (tuple)."""

    target: str
    dtype: pa.DataType
    type_name: str
    columns: tuple[str, ...]
    how: str  # "source" | "sources" | "format" | "constant"
    join: str = " "
    parts: tuple[str | tuple[str], ...] = ()
    constant: str | None = None
    text_steps: tuple[TextStep, ...] = ()
    number_steps: tuple[NumberStep, ...] = ()
    default: pa.Scalar | None = None
    required: bool = False

    @property
    def origin(self) -> str:
        """Where the value comes from, for reject reasons."""
        if self.how == "constant":
            return "a constant"
        names = ", ".join(repr(c) for c in self.columns)
        return f"source {names}"


@dataclass(frozen=True)
class RulePlan:
    reason: str
    test: RowTest


@dataclass(frozen=True)
class TablePlan:
    """All target columns of one table (a template's records, or its child list)."""

    fields: tuple[FieldPlan, ...]
    schema: pa.Schema
    rules: tuple[RulePlan, ...] = ()

    @property
    def source_columns(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for plan in self.fields:
            for column in plan.columns:
                seen.setdefault(column, None)
        return tuple(seen)


@dataclass(frozen=True)
class Evaluation:
    """Mapped columns (all rows, in schema order), which rows are rejected and why.

    Reasons are kept sparse (row index → "reason; reason") because rejects are few.
    """

    columns: dict[str, pa.Array]
    rejected: pa.BooleanArray
    reasons: dict[int, str]

    @property
    def any_rejected(self) -> bool:
        return bool(self.reasons)


@cache
def _pool() -> ThreadPoolExecutor:
    # Arrow kernels release the GIL, so columns are computed in parallel on all cores.
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="usdirect-mapping")


# A forked child (Airflow task runners fork) must not reuse the parent's pool: its threads are gone.
os.register_at_fork(after_in_child=_pool.cache_clear)


def evaluate(plan: TablePlan, table: pa.Table) -> Evaluation:
    """Compute every target column of `plan` from the text columns of `table`."""
    n = table.num_rows
    columns = {name: _as_text(name, table.column(name)) for name in plan.source_columns}
    if n >= PARALLEL_ROWS and len(plan.fields) > 1:
        results = list(_pool().map(lambda f: _compute_field(f, columns, n), plan.fields))
    else:
        results = [_compute_field(f, columns, n) for f in plan.fields]
    mapped: dict[str, pa.Array] = {}
    failures: list[Failure] = []
    for field, (values, field_failures) in zip(plan.fields, results, strict=True):
        mapped[field.target] = values
        failures.extend(field_failures)
    out = {f.name: mapped[f.name] if f.name in mapped else pa.nulls(n, f.type) for f in plan.schema}
    for rule in plan.rules:
        hit = pc.fill_null(rule.test(out), False)
        failures.append(Failure(hit, rule.reason))
    rejected, reasons = collect_reasons(failures, n)
    return Evaluation(out, rejected, reasons)


def keep_rows(columns: dict[str, pa.Array], keep: pa.BooleanArray) -> dict[str, pa.Array]:
    """Filter every column by `keep` (in parallel for large batches)."""
    if len(keep) >= PARALLEL_ROWS:
        return dict(zip(columns, _pool().map(lambda a: a.filter(keep), columns.values()), strict=True))
    return {name: arr.filter(keep) for name, arr in columns.items()}


def _as_text(name: str, column: pa.ChunkedArray) -> pa.Array:
    """One text array per source column, control characters removed before any transform (and
    counted in the log, so that a feed full of them does not go unnoticed)."""
    arr = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    cleaned = strip_control(arr)
    if cleaned is not arr:
        changed = pc.sum(pc.not_equal(arr, cleaned)).as_py() or 0
        if changed:
            log.warning("Removed control characters (NUL ...) from %d value(s) of source %r", changed, name)
    return cleaned


def _compute_field(plan: FieldPlan, columns: dict[str, pa.Array], n: int) -> tuple[pa.Array, list[Failure]]:
    failures: list[Failure] = []
    arr = _input(plan, columns, n)
    for step in plan.text_steps:
        arr, failure = step(arr)
        if failure is not None:
            failures.append(failure)
    arr = blank_to_null(arr)
    typed, bad = cast_text(arr, plan.dtype)
    if bad is not None and pc.any(bad).as_py():
        failures.append(Failure(bad, f"{plan.target}: not a valid {plan.type_name} ({plan.origin})"))
    for number_step in plan.number_steps:
        typed = number_step(typed)
    if plan.default is not None:
        typed = pc.coalesce(typed, plan.default)
    if plan.required:
        missing = pc.is_null(typed)
        for failure in failures:
            missing = pc.and_(missing, pc.invert(failure.mask))
        if pc.any(missing).as_py():
            failures.append(Failure(missing, f"{plan.target} is required but empty ({plan.origin})"))
    return typed, failures


def _input(plan: FieldPlan, columns: dict[str, pa.Array], n: int) -> pa.Array:
    if plan.how == "source":
        return columns[plan.columns[0]]
    if plan.how == "constant":
        return pa.repeat(pa.scalar(plan.constant, pa.string()), n)
    if plan.how == "sources":
        arrays = [blank_to_null(strip(columns[c])) for c in plan.columns]
        return join_skipping_nulls(arrays, plan.join)
    parts = [columns[p[0]] if isinstance(p, tuple) else p for p in plan.parts]
    return format_columns(parts)


def collect_reasons(failures: list[Failure], n: int) -> tuple[pa.BooleanArray, dict[int, str]]:
    """The rejected-rows mask and, per rejected row, every reason that applies joined by "; "."""
    rejected = pa.repeat(pa.scalar(False), n)
    found: dict[int, list[str]] = {}
    for failure in failures:
        if not pc.any(failure.mask).as_py():
            continue
        rejected = pc.or_(rejected, failure.mask)
        rows = np.flatnonzero(failure.mask.to_numpy(zero_copy_only=False))
        if isinstance(failure.reason, str):
            texts = [failure.reason] * len(rows)
        else:
            texts = failure.reason.take(pa.array(rows)).to_pylist()
        for row, text in zip(rows.tolist(), texts, strict=True):
            found.setdefault(row, []).append(text)
    return rejected, {row: "; ".join(texts) for row, texts in sorted(found.items())}
