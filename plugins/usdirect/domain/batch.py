"""A mapped batch of parent records (shipments, invoices), their children and the rejects of one
fetch, kept together on disk so that each target's task reads the same batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Batch:
    """Mapped parents, their children and the rejects of one fetch (kept together on disk)."""

    parents: pa.Table
    children: pa.Table
    rejects: pa.Table

    def write(self, folder: Any) -> None:
        """Write to a staging folder (``pathlib.Path`` or ``ObjectStoragePath``)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("parents", "children", "rejects"):
            with (folder / f"{name}.parquet").open("wb") as f:
                pq.write_table(getattr(self, name), f)

    @classmethod
    def read(cls, folder: Any) -> Batch:
        tables = {}
        for name in ("parents", "children", "rejects"):
            with (folder / f"{name}.parquet").open("rb") as f:
                tables[name] = pq.read_table(f)
        return cls(**tables)

    def children_by(self, key: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.children.to_pylist():
            out.setdefault(row[key], []).append(row)
        return out
