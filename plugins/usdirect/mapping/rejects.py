"""The rejects table (rows that could not be mapped) and the run-level reject-share guard."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from usdirect.domain.rejects import REJECT_SCHEMA
from usdirect.mapping.errors import RejectShareExceededError
from usdirect.mapping.kernels import strip_control


def empty_rejects() -> pa.Table:
    return REJECT_SCHEMA.empty_table()


def make_rejects(
    operation: str,
    row_numbers: pa.Array | Sequence[int],
    keys: pa.Array | Sequence[str | None],
    reasons: pa.Array | Sequence[str],
    raw_rows: Sequence[Any],
) -> pa.Table:
    """Build rejects rows; `raw_rows` are the source values (dicts) serialised as JSON text."""
    raw = [json.dumps(row, ensure_ascii=False, default=str) for row in raw_rows]  # escapes NUL
    n = len(raw)
    return pa.table(
        {
            "operation": pa.repeat(pa.scalar(operation, pa.string()), n),
            "row_number": pa.array(row_numbers, pa.int64()),
            "key": strip_control(pa.array(keys, pa.string())),  # a raw key may hold a NUL
            "reason": pa.array(reasons, pa.string()),
            "raw": pa.array(raw, pa.string()),
        },
        schema=REJECT_SCHEMA,
    )


def check_reject_share(read: int, rejects: pa.Table, max_share: float, top: int = 5) -> None:
    """Fail a run whose rejected share of `read` source rows is above `max_share` (0.05 = 5 %).

    The message lists the most frequent reasons, which usually point at one template fix.
    """
    if read <= 0 or rejects.num_rows == 0:
        return
    share = rejects.num_rows / read
    if share <= max_share:
        return
    counts = pc.value_counts(rejects.column("reason").combine_chunks())
    ranked = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda pair: (-pair[1], pair[0]),
    )[:top]
    reasons = "; ".join(f"{count}x {reason}" for reason, count in ranked)
    raise RejectShareExceededError(
        f"{rejects.num_rows} of {read} rows rejected ({share:.1%}, limit {max_share:.1%}). "
        f"Top reasons: {reasons}. Fix the source data or the mapping template, or raise the "
        f"maximum reject share for this run if the rejects are expected."
    )
