"""The demo's sequence of operations and its closing summary (read back from the warehouse)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any


@dataclass
class Demo:
    """What the steps share: the sandbox and the simulated time the demo started at."""

    sandbox: Any
    started: datetime | None = None


def _nothing(demo: Demo) -> None:
    return None


@dataclass
class Step:
    dag_id: str
    before: Callable[[Demo], None] = _nothing
    # Windowed DAGs: a manual run with logical date L covers the schedule interval that ends at L,
    # so the demo passes the sandbox's start time plus this offset to cover what it changed.
    window_end: timedelta | None = None
    conf: dict[str, Any] | None = None  # the run's Params, as a person would give them

    def logical_date(self, demo: Demo) -> datetime | None:
        """The run's logical date, as `airflow dags test <dag_id> <date>` would be given it."""
        if self.window_end is None or demo.started is None:
            return None
        return demo.started + self.window_end


def _start(demo: Demo) -> None:
    demo.started = demo.sandbox.clock_now()


def _next_catalog(demo: Demo) -> None:
    demo.sandbox.next_catalog_version()


def _seed_orders(demo: Demo) -> None:
    """What a channel integration would do: write pending fulfillment requests to the warehouse."""
    from usdirect.targets.warehouse.demo import seed_demo_requests
    from usdirect.targets.warehouse.sql import Warehouse

    n = seed_demo_requests(
        Warehouse.from_conn_id("usdirect_warehouse"), demo.sandbox.platform("fulfillment-requests")
    )
    print(f"  seeded {n} pending fulfillment requests into the warehouse")


def _ship(demo: Demo) -> None:
    demo.sandbox.advance_clock(days=4)
    print("  sandbox clock +4 days: orders processed and shipped")


def _invoice(demo: Demo) -> None:
    demo.sandbox.advance_clock(days=4)
    print("  sandbox clock +4 days: shipped orders invoiced, some paid")


STEPS = [
    Step("usdirect_get_inventory", before=_start),
    Step("usdirect_get_inventory_changes", before=_next_catalog, window_end=timedelta(minutes=15)),
    # Send Orders verifies first (operations.send_orders.automatic: false): the demo confirms
    # the run, as a person does after checking one order.
    Step("usdirect_send_orders", before=_seed_orders, conf={"confirm": True}),
    Step("usdirect_get_shipments", before=_ship, window_end=timedelta(hours=0)),
    Step("usdirect_get_invoices", before=_invoice),
]


def _rows(con: Any, sql: str) -> list[tuple]:
    try:
        return con.execute(sql).fetchall()
    except Exception:  # the table appears once its operation exists
        return []


def _reconciliation() -> dict[str, int]:
    """PO counts per state (and how many have a problem), as the package's own helper reports them."""
    from usdirect.targets.warehouse.demo import reconciliation_counts
    from usdirect.targets.warehouse.sql import Warehouse

    return reconciliation_counts(Warehouse.from_conn_id("usdirect_warehouse"))


def print_summary(warehouse: Path, results: list[tuple[str, int, float, Path]]) -> None:
    import duckdb

    print("\n================ US Direct demo summary ================")
    if not warehouse.exists():
        print("No warehouse was written: no operation ran.")
        return
    recon = _reconciliation() if any(r[0] == "usdirect_send_orders" for r in results) else {}
    con = duckdb.connect(str(warehouse), read_only=True)
    runs = _rows(
        con,
        "SELECT dag_id, task_id, outcome, rows_in, rows_out, rows_rejected, rows_changed, duration_s "
        "FROM usdirect_runs ORDER BY started_at",
    )
    print(f"{'task':<56} {'outcome':<8} {'in':>7} {'out':>7} {'rej':>5} {'chg':>7} {'secs':>5}")
    for dag_id, task_id, outcome, rin, rout, rrej, rchg, dur in runs:
        cells = [rin, rout, rrej, rchg]
        n = [
            f"{v:>{w}}" if v is not None else f"{'-':>{w}}" for v, w in zip(cells, (7, 7, 5, 7), strict=True)
        ]
        name = f"{dag_id.removeprefix('usdirect_')}.{task_id}"
        print(f"{name:<56} {outcome:<8} {' '.join(n)} {dur:>5.1f}")
    reasons = _rows(
        con,
        "SELECT operation, reason, count(*) n FROM usdirect_rejects GROUP BY 1, 2 ORDER BY n DESC, 2 LIMIT 8",
    )
    if reasons:
        print("\nTop reject reasons:")
        for op, reason, n in reasons:
            print(f"  {n:>5}  {op}: {reason}")
    if recon:
        with_problem = recon.pop("with_problem", 0)
        print("\nPurchase orders by state (usdirect_po_reconciliation):")
        for state, n in recon.items():
            print(f"  {n:>5}  {state}")
        print(f"  {with_problem:>5}  of them with a problem noted (column 'problem')")
    attention = _rows(
        con,
        "SELECT po_number, last_error FROM fulfillment_requests WHERE status = 'needs_attention' "
        "ORDER BY po_number LIMIT 10",
    )
    if attention:
        print("\nOrders needing attention:")
        for po, msg in attention:
            print(f"  {po}: {msg}")
    print("\nDAG runs (wall time of each dag.test() run):")
    for dag_id, rc, secs, log in results:
        print(f"  {dag_id:<36} {'ok' if rc == 0 else 'FAILED (see ' + str(log) + ')'}  {secs:.1f}s")
