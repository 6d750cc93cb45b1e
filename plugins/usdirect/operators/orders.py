"""Send Orders task: Airflow context in, ``usdirect.pipelines.orders.send_orders`` out.

One task sends every order from a thread pool: the hook's rate limiter is per process and per
token, so threads sharing it keep the whole run under the API limit, which separate mapped
tasks on different workers could not. Exactly-once holds per PO through the warehouse ledger
(or a lookup before each send), so the task is safe to retry or re-run at any point.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from typing import Any

from airflow.sdk import Param, task

from usdirect.config import Account, Config
from usdirect.operators.base import operation_run

log = logging.getLogger(__name__)


class OrdersNotSettledError(RuntimeError):
    """Some POs could not be settled this run; they are retried (looked up first) next time."""


@task(task_id="send_orders")
def send_orders(account_id: str) -> dict[str, int]:
    """Map, validate and send the pending fulfillment requests; record each outcome."""
    from usdirect.hooks.flxpoint import FlxpointHook
    from usdirect.hooks.usdirect import UsDirectHook
    from usdirect.mapping import load_template
    from usdirect.pipelines import orders

    with operation_run("send_orders", account_id) as run:
        params = run.params
        options = orders.SendOptions(
            dry_run=bool(params.get("dry_run")),
            po_numbers=tuple(params.get("po_numbers") or ()),
            max_orders=params.get("max_orders") or None,
            max_workers=run.settings.max_workers,
        )
        template = load_template(run.cfg.template_path(run.account, "send_orders"))
        with ExitStack() as hooks:
            usdirect = hooks.enter_context(UsDirectHook(run.account.usdirect_conn_id))
            platform = None
            if "platform" in run.targets:
                platform = hooks.enter_context(FlxpointHook(run.account.flxpoint_conn_id))
            report = orders.send_orders(template, usdirect, options, wh=run.warehouse(), platform=platform)
        counts = report.counts
        run.record.counts.update(counts)
        run.record.rows_in = len(report.outcomes)
        run.record.rows_out = counts[orders.SUBMITTED]
        run.record.rows_rejected = counts[orders.NEEDS_ATTENTION]
        attention = [o for o in report.outcomes if o.kind == orders.NEEDS_ATTENTION]
        for outcome in attention:
            log.warning("PO %s needs attention: %s", outcome.po_number, outcome.message)
        if attention and not options.dry_run:
            from usdirect.notifications import alert_needs_attention

            alert_needs_attention(
                run,
                "orders_need_attention",
                f"{len(attention)} order(s) need a person; nothing was sent for them",
                {o.po_number: o.message for o in attention[:10]},
            )
        if options.dry_run:
            _show_payloads(run, report)
        unfinished = report.unfinished
        if unfinished:
            raise OrdersNotSettledError(
                f"{len(unfinished)} order(s) not settled; the next run checks US Direct before any resend: "
                + "; ".join(f"{o.po_number}: {o.message}" for o in unfinished[:10])
            )
        return counts


def _show_payloads(run: Any, report: Any) -> None:
    """Dry run: log each payload that would be sent and keep them all in the run's staging folder."""
    from usdirect.pipelines.orders import DRY_RUN

    payloads = {o.po_number: o.payload for o in report.outcomes if o.kind == DRY_RUN}
    problems = {o.po_number: o.message for o in report.outcomes if o.message}
    for po, payload in payloads.items():
        log.info("dry run, would send PO %s: %s", po, json.dumps(payload, sort_keys=True))
    target = run.staging("send_orders", "dry_run.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as f:
        json.dump({"payloads": payloads, "problems": problems}, f, indent=2, sort_keys=True, default=str)
    log.info("dry run: %d payload(s), %d problem(s) written to %s", len(payloads), len(problems), target)


def define_send_orders(cfg: Config, account: Account) -> None:
    send_orders(account.id)


define_send_orders.params = {  # type: ignore[attr-defined]
    "dry_run": Param(
        False, type="boolean", description="Map and validate only; send nothing, show payloads."
    ),
    "po_numbers": Param(
        [],
        type="array",
        items={"type": "string"},
        description="Send only these POs (e.g. one to verify first).",
    ),
    "max_orders": Param(None, type=["null", "integer"], minimum=1, description="Send at most this many."),
}
