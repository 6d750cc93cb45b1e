"""`Template`: a validated mapping template applied to feed batches or JSON records."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from usdirect.mapping.engine import Evaluation, evaluate, keep_rows
from usdirect.mapping.errors import TemplateError, TemplateIssue
from usdirect.mapping.model import Switches
from usdirect.mapping.rejects import empty_rejects, make_rejects
from usdirect.mapping.validate import POSITION, CompiledTemplate, compile_template
from usdirect.mapping.yaml_lines import load_located_yaml


@dataclass(frozen=True)
class MappingResult:
    """Mapped rows (canonical columns + `row_number`), rejects, and child tables by name."""

    mapped: pa.Table
    rejects: pa.Table
    children: dict[str, pa.Table] = field(default_factory=dict)

    def payloads(self, exclude: tuple[str, ...] = ("row_number",)) -> list[dict[str, Any]]:
        """Mapped rows as JSON-ready nested dicts, children attached under their list name.

        Dotted targets nest (`ship_to.city` → {"ship_to": {"city": ...}}); decimals become
        strings ("12.49", as US Direct expects), dates and timestamps ISO 8601 text. For orders
        this is the PO payload of POST /v1/orders once `fr_id` is excluded as well.
        """
        children: dict[str, dict[int, list[dict[str, Any]]]] = {}
        for name, table in self.children.items():
            key = table.schema.names[0]
            grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for row in table.to_pylist():
                parent = row.pop("row_number")
                row.pop(key)
                grouped[parent].append({k: _json_value(v) for k, v in row.items()})
            children[name] = grouped
        out = []
        for row in self.mapped.to_pylist():
            payload: dict[str, Any] = {}
            for name, value in row.items():
                if name in exclude:
                    continue
                *parents, leaf = name.split(".")
                node = payload
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = _json_value(value)
            for name, grouped in children.items():
                payload[name] = grouped.get(row["row_number"], [])
            out.append(payload)
        return out


def load_template(path: str | Path) -> Template:
    """Load and validate a template; raises TemplateError naming file, line and fix."""
    return Template(compile_template(load_located_yaml(path)), str(path))


class Template:
    """A mapping template for one operation (inventory, orders, shipments or invoices)."""

    def __init__(self, compiled: CompiledTemplate, path: str, switches: Switches | None = None) -> None:
        self._compiled = compiled
        self.path = path
        self.operation: str = compiled.spec.operation
        if self.operation == "inventory":
            self.switches: Switches | None = switches or compiled.spec.switches or Switches()
        else:
            self.switches = None

    def __repr__(self) -> str:
        return f"Template({self.operation!r}, {self.path!r})"

    def fingerprint(self) -> str:
        """A digest of everything in the template that decides a mapped value: its file, the value-map
        files it lists and the switches in force. Equal fingerprints map equal rows equally."""
        digest = hashlib.sha256()
        template = Path(self.path)
        for path in (template, *(template.parent / f for f in self._compiled.spec.value_map_files)):
            digest.update(path.read_bytes())
        digest.update(self.switches.model_dump_json().encode() if self.switches else b"")
        return digest.hexdigest()

    # ---- what a run may write -------------------------------------------------------------
    def writable_fields(self) -> tuple[str, ...]:
        """Target fields a run may write under the switches (inventory); all fields otherwise."""
        targets = self._compiled.targets
        if self.switches is None:
            return tuple(f.name for f in self.schema)
        on = self.switches.model_dump()
        allowed = set(targets.always_writable)
        for switch, names in targets.switch_groups.items():
            if on[switch]:
                allowed.update(names)
        return tuple(t.name for t in targets.targets if t.name in allowed)

    def with_switches(self, **overrides: bool) -> Template:
        """A copy with some switches changed for one run, e.g. `with_switches(sync_pricing=False)`."""
        if self.switches is None:
            raise ValueError(f"{self.operation} templates have no switches")
        return Template(self._compiled, self.path, self.switches.model_copy(update=overrides))

    # ---- schemas ----------------------------------------------------------------------------
    @property
    def schema(self) -> pa.Schema:
        """Columns of `MappingResult.mapped` except the trailing `row_number`."""
        return self._compiled.parent.schema

    @property
    def mapped_schema(self) -> pa.Schema:
        return self.schema.append(pa.field("row_number", pa.int64()))

    @property
    def child_name(self) -> str | None:
        child = self._compiled.targets.child
        return child.name if child else None

    @property
    def child_schema(self) -> pa.Schema | None:
        """Child table columns: the parent's key, the child's targets, the parent's `row_number`."""
        child = self._compiled.targets.child
        if child is None or self._compiled.child is None:
            return None
        key = self.schema.field(child.parent_key)
        return pa.schema([key, *self._compiled.child.schema, pa.field("row_number", pa.int64())])

    @property
    def encoding(self) -> str:
        """The feed's text encoding (a Python codec name, ``utf-8`` unless the template says)."""
        return self._compiled.spec.encoding

    def source_line(self, column: str) -> int:
        """The template line of the first field that reads ``column`` (0 when none does)."""
        return self._compiled.source_lines.get(column, 0)

    @property
    def mapped_fields(self) -> tuple[str, ...]:
        """Target fields the template maps; the other canonical columns are always null."""
        return tuple(f.target for f in self._compiled.parent.fields)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Source columns (feed headers or JSON paths) the template reads."""
        return self._compiled.parent.source_columns

    # ---- tabular sources --------------------------------------------------------------------
    def map_batch(
        self, batch: pa.RecordBatch | pa.Table, row_offset: int = 0, row_numbers: pa.Array | None = None
    ) -> MappingResult:
        """Map a batch of a text feed. Row numbers are `row_offset + 1 ...` unless given."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        self.check_columns(table.column_names)
        n = table.num_rows
        if row_numbers is None:
            row_numbers = pa.array(np.arange(row_offset + 1, row_offset + n + 1, dtype=np.int64))
        evaluation = evaluate(self._compiled.parent, table)
        if not evaluation.any_rejected:
            return MappingResult(_mapped(evaluation, row_numbers, None), empty_rejects())
        rows = pa.array(list(evaluation.reasons), pa.int64())
        rejects = make_rejects(
            self.operation,
            row_numbers.take(rows),
            self._keys(evaluation, table, rows),
            list(evaluation.reasons.values()),
            table.take(rows).to_pylist(),
        )
        return MappingResult(_mapped(evaluation, row_numbers, pc.invert(evaluation.rejected)), rejects)

    def check_columns(self, columns: list[str]) -> None:
        """Fail early, with the template line to edit, when the source lacks a column the template reads."""
        missing = [c for c in self.source_columns if c not in columns and c != POSITION]
        if missing:
            lines = self._compiled.source_lines
            available = ", ".join(columns)
            raise TemplateError(
                [
                    TemplateIssue(
                        self.path,
                        lines.get(name, 0),
                        f"source column {name!r} is not in the feed",
                        f"change the source to one of the feed's columns: {available}",
                    )
                    for name in missing
                ]
            )

    def _keys(self, evaluation: Evaluation, table: pa.Table, rows: pa.Array) -> pa.Array:
        """Reject keys: the mapped key, or the raw source value where the key could not be mapped."""
        mapped = pc.cast(evaluation.columns[self._compiled.targets.key].take(rows), pa.string())
        source = self.key_source()
        if source is None or source not in table.column_names:
            return mapped
        raw = pc.cast(table.column(source).take(rows), pa.string()).combine_chunks()
        return pc.coalesce(mapped, raw)

    # ---- JSON sources -----------------------------------------------------------------------
    def map_records(self, records: list[dict[str, Any]], row_offset: int = 0) -> MappingResult:
        """Map JSON records (nested paths such as `shippingAddress.city`, child lists such as `items`).

        Flattening walks each record in Python (small volumes); the column work is vectorised.
        A record whose child line fails is rejected whole, with the line named in the reason.
        """
        compiled = self._compiled
        n = len(records)
        table = _flatten(records, compiled.parent.source_columns)
        evaluation = evaluate(compiled.parent, table)
        extra: dict[int, list[str]] = defaultdict(list)
        child_table = None
        if compiled.child is not None and compiled.child_source is not None:
            child_table = self._map_children(records, evaluation, extra, row_offset)
        reasons: list[str | None] = [evaluation.reasons.get(i) for i in range(n)]
        for index, more in extra.items():
            first = reasons[index]
            reasons[index] = "; ".join(([first] if first else []) + more)
        rejected = pa.array([r is not None for r in reasons], pa.bool_())
        row_numbers = pa.array(np.arange(row_offset + 1, row_offset + n + 1, dtype=np.int64))
        keep = pc.invert(rejected)
        mapped = _mapped(evaluation, row_numbers, keep)
        children: dict[str, pa.Table] = {}
        if child_table is not None:
            parent = child_table.column("row_number")
            parent_kept = pc.take(keep, pc.subtract(parent, row_offset + 1))
            children[self.child_name or ""] = child_table.filter(parent_kept)
        bad = {i: r for i, r in enumerate(reasons) if r is not None}
        if not bad:
            return MappingResult(mapped, empty_rejects(), children)
        keys = pc.cast(evaluation.columns[compiled.targets.key], pa.string()).to_pylist()
        key_source = self.key_source()
        rejects = make_rejects(
            self.operation,
            [row_offset + i + 1 for i in bad],
            [keys[i] or (_to_text(_get_path(records[i], key_source)) if key_source else None) for i in bad],
            list(bad.values()),
            [records[i] for i in bad],
        )
        return MappingResult(mapped, rejects, children)

    def key_source(self) -> str | None:
        """The source column of the key field (e.g. the feed's `sku`), if it is read from one."""
        key = self._compiled.targets.key
        plan = next((f for f in self._compiled.parent.fields if f.target == key), None)
        return plan.columns[0] if plan is not None and plan.how == "source" else None

    def _map_children(
        self,
        records: list[dict[str, Any]],
        evaluation: Evaluation,
        extra: dict[int, list[str]],
        row_offset: int,
    ) -> pa.Table:
        compiled = self._compiled
        assert compiled.child is not None and compiled.child_source is not None
        source = compiled.child_source
        items: list[dict[str, Any]] = []
        parents: list[int] = []
        positions: list[int] = []
        for index, record in enumerate(records):
            children = _get_path(record, source)
            if not isinstance(children, list) or not children:
                extra[index].append(f"no {source} in the record (the {self.child_name} list is empty)")
                continue
            for position, item in enumerate(children, start=1):
                items.append(item if isinstance(item, dict) else {})
                parents.append(index)
                positions.append(position)
        flat = _flatten(items, compiled.child.source_columns, positions)
        child_eval = evaluate(compiled.child, flat)
        for i, reason in child_eval.reasons.items():
            extra[parents[i]].append(f"{source}[{positions[i]}]: {reason}")
        parent_index = pa.array(parents, pa.int64())
        key_name = compiled.targets.child.parent_key if compiled.targets.child else ""
        key = pc.take(evaluation.columns[key_name], parent_index)
        row_numbers = pc.add(parent_index, row_offset + 1)
        columns = {key_name: key, **child_eval.columns, "row_number": row_numbers}
        return pa.table(columns)


def _mapped(evaluation: Evaluation, row_numbers: pa.Array, keep: pa.Array | None) -> pa.Table:
    columns = {**evaluation.columns, "row_number": row_numbers}
    return pa.table(columns if keep is None else keep_rows(columns, keep))


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _get_path(record: Any, path: str) -> Any:
    current = record
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _flatten(
    records: list[dict[str, Any]], paths: tuple[str, ...], positions: list[int] | None = None
) -> pa.Table:
    """One text column per source path; `$position` is the item's 1-based place in its list."""
    columns: dict[str, pa.Array] = {}
    for path in paths:
        if path == POSITION:
            values: list[str | None] = [str(p) for p in positions or []]
        else:
            values = [_to_text(_get_path(r, path)) for r in records]
        columns[path] = pa.array(values, pa.string())
    if not columns:
        return pa.table({"__empty": pa.nulls(len(records), pa.string())})
    return pa.table(columns)
