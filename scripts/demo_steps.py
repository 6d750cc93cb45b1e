"""The demo's sequence of operations and its closing summary (read back from the warehouse)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Hook = Callable[[Any, Path], None]


def _nothing(sb: Any, warehouse: Path) -> None:
    return None


@dataclass
class Step:
    dag_id: str
    before: Hook = _nothing
    logical_date: Callable[[], str | None] = field(default=lambda: None)

    def args(self) -> list[str]:
        date = self.logical_date()
        return [date] if date else []


def _next_catalog(sb: Any, warehouse: Path) -> None:
    sb.next_catalog_version()


def _ship(sb: Any, warehouse: Path) -> None:
    sb.advance_clock(days=3)


def _invoice(sb: Any, warehouse: Path) -> None:
    sb.advance_clock(days=5)


STEPS = [
    Step("usdirect_get_inventory"),
    Step("usdirect_get_inventory_changes", before=_next_catalog),
    Step("usdirect_send_orders"),
    Step("usdirect_get_shipments", before=_ship),
    Step("usdirect_get_invoices", before=_invoice),
]


def _rows(con: Any, sql: str) -> list[tuple]:
    try:
        return con.execute(sql).fetchall()
    except Exception:  # the table appears once its operation exists
        return []


def print_summary(warehouse: Path, results: list[tuple[str, int, float, Path]]) -> None:
    import duckdb

    print("\n================ US Direct demo summary ================")
    if not warehouse.exists():
        print("No warehouse was written: no operation ran.")
        return
    con = duckdb.connect(str(warehouse), read_only=True)
    runs = _rows(
        con,
        "SELECT dag_id, task_id, outcome, rows_in, rows_out, rows_rejected, rows_changed, duration_s, counts "
        "FROM usdirect_runs ORDER BY started_at",
    )
    print(f"{'task':<48} {'outcome':<8} {'in':>8} {'out':>8} {'rej':>6} {'chg':>8} {'secs':>6}")
    for dag_id, task_id, outcome, rin, rout, rrej, rchg, dur, _ in runs:
        cells = [rin, rout, rrej, rchg]
        n = [
            f"{v:>{w}}" if v is not None else f"{'-':>{w}}" for v, w in zip(cells, (8, 8, 6, 8), strict=True)
        ]
        print(f"{dag_id + '.' + task_id:<48} {outcome:<8} {' '.join(n)} {dur:>6.1f}")
    reasons = _rows(
        con,
        "SELECT operation, reason, count(*) n FROM usdirect_rejects GROUP BY 1, 2 ORDER BY n DESC LIMIT 8",
    )
    if reasons:
        print("\nTop reject reasons:")
        for op, reason, n in reasons:
            print(f"  {n:>5}  {op}: {reason}")
    recon = _rows(con, "SELECT state, count(*) FROM usdirect_po_reconciliation GROUP BY 1 ORDER BY 1")
    if recon:
        print("\nPurchase orders by state (usdirect_po_reconciliation):")
        for state, n in recon:
            print(f"  {n:>5}  {state}")
    print("\nDAG runs (wall time incl. Airflow start-up):")
    for dag_id, rc, secs, log in results:
        print(f"  {dag_id:<36} {'ok' if rc == 0 else 'FAILED (see ' + str(log) + ')'}  {secs:.1f}s")
