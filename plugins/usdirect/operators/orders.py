"""Send Orders task: Airflow context in, ``usdirect.pipelines.orders.send_orders`` out.

One task sends every order from a thread pool: the hook's rate limiter is per process and per
token, so threads sharing it keep the whole run under the API limit, which separate mapped
tasks on different workers could not. Exactly-once holds per PO through the ledger in the
account's warehouse connection (platform-only accounts too), so the task is safe to retry or
re-run at any point, and two runs at once split the work. Whether a run may submit at all is
decided by ``usdirect.pipelines.orders_gate`` (verify first).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from usdirect.domain import products as pr
from usdirect.operators.base import OperationRun
from usdirect.operators.usdirect_operator import UsDirectBaseOperator, po_list
from usdirect.settings.config import Account, Config

if TYPE_CHECKING:
    from usdirect.targets.warehouse.sql import Warehouse

log = logging.getLogger(__name__)


class OrdersNotSettledError(RuntimeError):
    """Some POs could not be settled this run; they are retried (looked up first) next time."""


class UsDirectSendOrdersOperator(UsDirectBaseOperator):
    """Map, validate and send the pending fulfillment requests to US Direct; record each outcome.

    Each PO is created exactly once through the ledger in the warehouse connection (also for a
    platform-only account), so the task is safe to retry. Whether a run may submit at all is the
    verify-first gate's call (``usdirect.pipelines.orders_gate``): unless ``automatic``, only
    manual runs with ``po_numbers`` or ``confirm`` submit. Returns the counts per outcome (XCom).
    Takes every argument of ``UsDirectBaseOperator``; the run inputs below override the DAG run's
    Params of the same name.

    :param dry_run: Map and validate only; send nothing, keep the payloads in staging.
    :param po_numbers: Send only these POs: a list, a JSON or comma list string, or the rows of a
        one-column SQL query. (templated)
    :param confirm: Submit every pending order in this manual run although ``automatic`` is off.
    :param max_orders: Send at most this many.
    :param automatic: Scheduled runs submit too (default false: verify one order first).
    :param max_workers: Orders sent at once, within the connection's rate limit (default 4).
    """

    operation = "send_orders"
    products = pr.Products(
        tables=(pr.FULFILLMENT_REQUESTS,),
        platform=(pr.PLATFORM_FULFILLMENT_REQUESTS,),
        reads=("platform:GET /fulfillment-requests",),
    )
    template_fields: Sequence[str] = (*UsDirectBaseOperator.template_fields, "po_numbers")

    def __init__(
        self,
        *,
        dry_run: bool | None = None,
        po_numbers: Any = None,
        confirm: bool | None = None,
        max_orders: int | None = None,
        automatic: bool | None = None,
        max_workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(operation_settings={"automatic": automatic, "max_workers": max_workers}, **kwargs)
        self._dry_run = dry_run  # BaseOperator.dry_run is a method
        self.po_numbers = po_numbers
        self.confirm = confirm
        self.max_orders = max_orders

    def run_inputs(self) -> dict[str, Any]:
        inputs = {
            "dry_run": self._dry_run,
            "po_numbers": po_list(self.po_numbers),
            "confirm": self.confirm,
            "max_orders": self.max_orders,
        }
        return {k: v for k, v in inputs.items() if v is not None}

    def execute_run(self, run: OperationRun) -> dict[str, int]:
        return send_orders(run)

    def changed_rows(self, run: OperationRun) -> int:
        """The orders submitted: each marks its fulfillment request processed."""
        return run.record.rows_out or 0


def send_orders(run: OperationRun) -> dict[str, int]:
    """Map, validate and send the pending fulfillment requests; record each outcome."""
    from usdirect.domain.orders import OutcomeKind
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.mapping import load_template
    from usdirect.pipelines import orders
    from usdirect.pipelines.orders_gate import gate

    params = run.params
    decision = gate(run.settings.automatic, run.run_type, params)
    options = orders.SendOptions(
        dry_run=not decision.submit,
        po_numbers=tuple(params.get("po_numbers") or ()),
        max_orders=params.get("max_orders") or None,
        max_workers=run.settings.max_workers,
    )
    if decision.reason:
        log.warning("Send Orders sends nothing in this run: %s", decision.reason)
    template = load_template(run.cfg.template_path(run.account, "send_orders"))
    ledger = run.state_warehouse()  # also for platform-only accounts
    with ExitStack() as hooks:
        usdirect = hooks.enter_context(UsDirectHook(run.account.usdirect_conn_id))
        platform = None
        if "platform" in run.targets:
            platform = hooks.enter_context(FlxpointHook(run.account.flxpoint_conn_id))
        try:
            report = orders.send_orders(template, usdirect, options, wh=ledger, platform=platform)
        except orders.CredentialRefusedError as exc:
            _count(run, exc.report)
            raise
    counts = _count(run, report)
    attention = [o for o in report.outcomes if o.kind == OutcomeKind.NEEDS_ATTENTION]
    for outcome in attention:
        log.warning("PO %s needs attention: %s", outcome.po_number, outcome.message)
    if options.dry_run:
        _show_payloads(run, report)
    if decision.held:
        run.record.counts["held_for_confirmation"] = 1
        _remind(run, ledger, report, decision.reason)
    elif attention and not options.dry_run:
        from usdirect.notifications.notifier import alert_needs_attention

        alert_needs_attention(
            run,
            "orders_need_attention",
            f"{len(attention)} order(s) need a person; nothing was sent for them",
            {o.po_number: o.message for o in attention[:10]},
        )
    unfinished = report.unfinished
    if unfinished:
        raise OrdersNotSettledError(
            f"{len(unfinished)} order(s) not settled; the next run checks US Direct before any resend: "
            + "; ".join(f"{o.po_number}: {o.message}" for o in unfinished[:10])
        )
    return counts


def _count(run: Any, report: Any) -> dict[str, int]:
    from usdirect.domain.orders import OutcomeKind

    counts = report.counts
    run.record.counts.update(counts)
    run.record.rows_in = len(report.outcomes)
    run.record.rows_out = counts[OutcomeKind.SUBMITTED]
    run.record.rows_rejected = counts[OutcomeKind.NEEDS_ATTENTION]
    return counts


def _remind(run: Any, ledger: Warehouse, report: Any, reason: str) -> None:
    """Orders wait for a person to confirm: say so in a needs-attention alert, once a day at most."""
    import datetime as dt

    from usdirect.domain.orders import OutcomeKind
    from usdirect.notifications.notifier import alert_needs_attention
    from usdirect.targets.warehouse.order_notices import claim_notice

    waiting = [o.po_number for o in report.outcomes if o.kind == OutcomeKind.DRY_RUN]
    attention = report.count(OutcomeKind.NEEDS_ATTENTION)
    if not waiting and not attention:
        return
    if not claim_notice(ledger, run.account.id, "orders_awaiting_confirmation", dt.timedelta(days=1)):
        log.info("Orders await confirmation; today's reminder was sent already")
        return
    alert_needs_attention(
        run,
        "orders_awaiting_confirmation",
        f"{len(waiting)} order(s) wait to be sent and {attention} need a person: {reason}",
        {"would send": ", ".join(waiting[:10]) + (" …" if len(waiting) > 10 else "")},
    )


def _show_payloads(run: Any, report: Any) -> None:
    """Dry run: log each order that would be sent (no street address, name or phone) and keep the
    full payloads in the run's staging folder."""
    from usdirect.domain.orders import OutcomeKind
    from usdirect.pipelines.orders_gate import describe_payload

    payloads = {o.po_number: o.payload for o in report.outcomes if o.kind == OutcomeKind.DRY_RUN}
    problems = {o.po_number: o.message for o in report.outcomes if o.message}
    for payload in payloads.values():
        log.info("dry run, would send %s", describe_payload(payload))
    target = run.staging("send_orders", "dry_run.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as f:
        json.dump({"payloads": payloads, "problems": problems}, f, indent=2, sort_keys=True, default=str)
    log.info("dry run: %d payload(s), %d problem(s) written to %s", len(payloads), len(problems), target)


def define_send_orders(cfg: Config, account: Account) -> None:
    """The shipped DAG: one send_orders task."""
    UsDirectSendOrdersOperator(task_id="send_orders", account_id=account.id, from_settings=True)
