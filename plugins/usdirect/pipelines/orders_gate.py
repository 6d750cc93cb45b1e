"""Verify first: whether a Send Orders run may submit, or only shows what it would send.

Orders cost real money and cannot be taken back, so with ``operations.send_orders.automatic:
false`` (the shipped default) only a person submits: a manual run that names the POs
(``po_numbers``) or says ``confirm: true``. Every other run (scheduled, backfill, asset-triggered,
or a manual run without either) is a dry run. That includes the scheduled run Airflow starts at
once when a DAG is unpaused on trigger, which a user asking for a dry run never meant to submit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MANUAL = "manual"


@dataclass(frozen=True)
class Gate:
    """``submit`` or not, and (when held) why, in words a person can act on."""

    submit: bool
    held: bool = False  # a dry run only because automatic sending is off
    reason: str = ""


def gate(automatic: bool, run_type: str, params: Mapping[str, Any]) -> Gate:
    """The decision for one run from the setting, the run type and the run's Params."""
    if params.get("dry_run"):
        return Gate(False, reason="dry run requested (Param dry_run)")
    if automatic:
        return Gate(True)
    if run_type == MANUAL and (params.get("po_numbers") or params.get("confirm")):
        return Gate(True)
    what = (
        "this manual run has neither po_numbers nor confirm: true"
        if run_type == MANUAL
        else f"this {run_type} run never submits"
    )
    return Gate(
        False,
        held=True,
        reason=(
            "automatic sending is off (operations.send_orders.automatic: false in the usdirect "
            f"settings file) and {what}, so nothing was sent. Verify one order with a manual run "
            'with Params {"po_numbers": ["<PO>"]}, then set automatic: true, or send the rest with '
            '{"confirm": true}'
        ),
    )


def describe_payload(payload: Mapping[str, Any]) -> str:
    """One log line per order a dry run would send: PO, lines, ship-to city/state and shipping
    code; never the street address, name, phone or e-mail."""
    ship_to = payload.get("ship_to") or {}
    lines = ", ".join(
        f"{line.get('item_number')} x{line.get('quantity')}" for line in payload.get("lines") or []
    )
    return (
        f"PO {payload.get('po_number')}: {len(payload.get('lines') or [])} line(s) [{lines}], "
        f"ship to {ship_to.get('city')}, {ship_to.get('state')}, {payload.get('shipping_code')}"
    )
