"""US Direct orders: validation as the contract states it, and a lifecycle on the simulated clock.

Each created order gets a timeline of events computed at submission from (seed, PO number):
processing, one or two shipments (distinct tracking numbers) whose status moves on after they
first appear, an invoice once everything has shipped, and payment. Advancing the clock applies
the events that have come due, stamping each change with the event's own time. An order can be
cancelled (admin API) until it has fully shipped; its pending events then do nothing, so it ships,
is invoiced and moves status no further (parcels already shipped still travel).
"""

from __future__ import annotations

import heapq
import random
import re
import string
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import numpy as np

from sandbox.catalog import STATUSES, Catalog
from sandbox.common import ApiError, SimClock, iso, json_ready, money

SHIPPING_CODES = {
    "UPS-GND": ("UPS", "Ground", Decimal("5.95")),
    "UPS-2DA": ("UPS", "2nd Day Air", Decimal("14.95")),
    "UPS-NDA": ("UPS", "Next Day Air", Decimal("29.95")),
    "FEDEX-GND": ("FedEx", "Ground", Decimal("6.25")),
    "FEDEX-EXP": ("FedEx", "Express", Decimal("24.95")),
    "USPS-PRIORITY": ("USPS", "Priority Mail", Decimal("8.50")),
}
LOWER_48_AND_DC = frozenset(
    [
        "AL",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
    ]
)
PO_NUMBER = re.compile(r"[A-Za-z0-9_-]{1,30}")
PO_BOX = re.compile(r"\b(p\.?\s*o\.?\s*box|post\s+office\s+box)\b", re.IGNORECASE)
POSTAL_CODE = re.compile(r"^\d{5}(-\d{4})?$")
MAX_WEIGHT_LB = 30.0
SPLIT_FEE = Decimal("2.00")
RETURN_SHARE, EXCEPTION_SHARE = 0.05, 0.15  # parcels returned (invoice credited) / delayed by an exception
REQUIRED_SHIP_TO = ("name", "address1", "city", "state", "postal_code", "country")


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def validate_order(payload: Any) -> list[dict[str, str]]:
    """Field problems of an order body (empty when valid); item availability is checked per line later."""
    if not isinstance(payload, dict):
        return [_problem("body", "must be a JSON object")]
    problems: list[dict[str, str]] = []
    for key in ("po_number", "order_date", "shipping_code"):
        if payload.get(key) in (None, ""):
            problems.append(_problem(key, "required"))
    po = payload.get("po_number")
    if po not in (None, "") and (not isinstance(po, str) or not PO_NUMBER.fullmatch(po)):
        problems.append(_problem("po_number", "must be 1-30 characters of A-Z a-z 0-9 - _"))
    order_date = payload.get("order_date")
    if order_date not in (None, ""):
        try:
            datetime.strptime(str(order_date), "%Y-%m-%d")
        except ValueError:
            problems.append(_problem("order_date", "must be a date YYYY-MM-DD"))
    code = payload.get("shipping_code")
    if code not in (None, "") and code not in SHIPPING_CODES:
        problems.append(
            _problem("shipping_code", f"unknown shipping code; use one of {', '.join(SHIPPING_CODES)}")
        )
    problems += _validate_ship_to(payload.get("ship_to"))
    problems += _validate_lines(payload.get("lines"))
    return problems


def _validate_ship_to(ship_to: Any) -> list[dict[str, str]]:
    if not isinstance(ship_to, dict):
        return [_problem("ship_to", "required")]
    problems = [
        _problem(f"ship_to.{k}", "required") for k in REQUIRED_SHIP_TO if ship_to.get(k) in (None, "")
    ]
    for key in ("address1", "address2"):
        if isinstance(ship_to.get(key), str) and PO_BOX.search(ship_to[key]):
            problems.append(_problem(f"ship_to.{key}", "US Direct does not ship to PO Boxes"))
    postal = ship_to.get("postal_code")
    if postal not in (None, "") and not (isinstance(postal, str) and POSTAL_CODE.match(postal)):
        problems.append(_problem("ship_to.postal_code", "must be 5 digits (or ZIP+4)"))
    country = ship_to.get("country")
    if country not in (None, "") and country != "US":
        problems.append(_problem("ship_to.country", "US Direct ships within the US only"))
    state = ship_to.get("state")
    if state not in (None, "") and state not in LOWER_48_AND_DC:
        problems.append(
            _problem("ship_to.state", "must be a state in the lower 48 (no AK, HI, territories or APO)")
        )
    return problems


def _validate_lines(lines: Any) -> list[dict[str, str]]:
    if not isinstance(lines, list) or not lines:
        return [_problem("lines", "at least one line is required")]
    problems: list[dict[str, str]] = []
    numbers: set[Any] = set()
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        if not isinstance(line, dict):
            problems.append(_problem(where, "must be an object"))
            continue
        number = line.get("line_number")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1 or number in numbers:
            problems.append(_problem(f"{where}.line_number", "must be a unique integer ≥ 1"))
        numbers.add(number)
        if line.get("item_number") in (None, ""):
            problems.append(_problem(f"{where}.item_number", "required"))
        qty = line.get("quantity")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            problems.append(_problem(f"{where}.quantity", "must be an integer ≥ 1"))
        cost = line.get("unit_cost")
        if cost is not None:
            try:
                Decimal(str(cost))
            except InvalidOperation:
                problems.append(_problem(f"{where}.unit_cost", "must be a decimal string"))
    return problems


def _new_counts() -> dict[str, int]:
    return {"submitted": 0, "created": 0}


class OrderBook:
    """Orders, shipments and invoices of one account, moved along by the simulated clock."""

    def __init__(self, catalog: Catalog, clock: SimClock, seed: int) -> None:
        self.catalog, self.clock, self.seed = catalog, clock, seed
        self.orders: dict[str, dict] = {}
        self.shipments: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(_new_counts)
        self._events: list[tuple[datetime, int, Callable[[datetime], None]]] = []
        self._seq = 0
        self._order_no = 100
        self._shipment_no = 77000
        self._invoice_no = 10200

    # --- submission -------------------------------------------------------------------------
    def submit(self, payload: Any, idempotency_key: str | None) -> dict:
        """Create the order (201 body) or raise 409 duplicate_po / 422 validation_failed."""
        po = payload.get("po_number") if isinstance(payload, dict) else None
        if isinstance(po, str) and PO_NUMBER.fullmatch(po):
            self.counts[po]["submitted"] += 1
            if po in self.orders:
                existing = self.orders[po]["order_id"]
                raise ApiError(
                    409,
                    "duplicate_po",
                    f"PO {po} was already submitted as order {existing}",
                    [{"field": "po_number", "message": "already submitted", "order_id": existing}],
                )
        problems = validate_order(payload)
        if idempotency_key is not None and idempotency_key != po:
            problems.append(_problem("Idempotency-Key", "must equal po_number"))
        if problems:
            raise ApiError(422, "validation_failed", "the order is invalid; nothing was created", problems)
        return self._create(payload)

    def _create(self, payload: dict) -> dict:
        po = payload["po_number"]
        self._order_no += 1
        lines, weight = [], 0.0
        for line in payload["lines"]:
            outcome = {
                "line_number": line["line_number"],
                "item_number": str(line["item_number"]),
                "status": "accepted",
            }
            i = self.catalog.index_of(str(line["item_number"]))
            if i is None:
                outcome |= {"status": "rejected", "reason": "unknown_item"}
            elif STATUSES[self.catalog.status[i]] == "discontinued":
                outcome |= {"status": "rejected", "reason": "discontinued"}
            elif self.catalog.quantity[i] < line["quantity"]:
                outcome |= {"status": "rejected", "reason": "out_of_stock"}
            else:
                weight += float(self.catalog.weights(np.array([i]))[0]) * line["quantity"]
                outcome["_unit_cost"] = money(Decimal(int(self.catalog.cost[i])) / 100)
            lines.append(outcome)
        accepted = [ln for ln in lines if ln["status"] == "accepted"]
        if not accepted:
            status = "cancelled"
        elif weight > MAX_WEIGHT_LB:
            status = "on_hold"
        elif len(accepted) < len(lines):
            status = "partially_accepted"
        else:
            status = "received"
        order = json_ready(payload) | {
            "order_id": f"UD-{self._order_no:06d}",
            "status": status,
            "created_at": iso(self.clock.now),
            "updated_at": iso(self.clock.now),
        }
        order["lines"] = [
            dict(submitted, status=out["status"], **({"reason": out["reason"]} if "reason" in out else {}))
            for submitted, out in zip(order["lines"], lines, strict=True)
        ]
        order["_accepted"] = accepted
        self.orders[po] = order
        self.counts[po]["created"] += 1
        if accepted:
            self._schedule(order, hold=status == "on_hold")
        return {
            "order_id": order["order_id"],
            "po_number": po,
            "status": status,
            "lines": [{k: v for k, v in ln.items() if not k.startswith("_")} for ln in lines],
        }

    # --- lifecycle --------------------------------------------------------------------------
    def _at(self, when: datetime, action: Callable[[datetime], None]) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, action))

    def _schedule(self, order: dict, hold: bool) -> None:
        rng = random.Random(f"{self.seed}:{order['po_number']}")
        t0 = self.clock.now + timedelta(hours=24 if hold else 0)
        accepted = order["_accepted"]
        units = [(ln, qty) for ln in accepted for qty in [self._qty(order, ln)]]
        parcels: list[list[tuple[dict, int]]]
        if len(units) >= 2 and rng.random() < 0.6:
            cut = rng.randint(1, len(units) - 1)
            parcels = [units[:cut], units[cut:]]
        elif len(units) == 1 and units[0][1] >= 2 and rng.random() < 0.4:
            ln, qty = units[0]
            first = rng.randint(1, qty - 1)
            parcels = [[(ln, first)], [(ln, qty - first)]]
        else:
            parcels = [units]
        # Events are partials of methods, not lambdas, so that the book can be pickled (--state-file).
        self._at(t0 + timedelta(hours=1), partial(self._set_status, order, "processing"))
        rolls = [rng.random() for _ in parcels]
        ship_times = [t0 + timedelta(hours=20 + 24 * k) for k in range(len(parcels))]
        for k, (parcel, when) in enumerate(zip(parcels, ship_times, strict=True)):
            last = k == len(parcels) - 1
            self._at(when, partial(self._ship, order, parcel, k, last, rolls[k]))
        invoice_at = ship_times[-1] + timedelta(hours=2)
        self._at(invoice_at, partial(self._invoice, order, len(parcels) > 1))
        settled = "credited" if min(rolls) < RETURN_SHARE else "paid"
        self._at(invoice_at + timedelta(days=3), partial(self._set_invoice_status, order, settled))

    def _qty(self, order: dict, accepted_line: dict) -> int:
        for line in order["lines"]:
            if line["line_number"] == accepted_line["line_number"]:
                return int(line["quantity"])
        raise KeyError(accepted_line["line_number"])

    def _set_status(self, order: dict, status: str, at: datetime) -> None:
        if order["status"] == "cancelled":
            return
        order["status"], order["updated_at"] = status, iso(at)

    def cancel(self, po: str) -> dict:
        """Cancel an order that has not fully shipped, now (404 unknown PO, 409 shipped or cancelled)."""
        order = self.orders.get(po)
        if order is None:
            raise ApiError(404, "order_not_found", f"no order with PO number {po}")
        if order["status"] in ("shipped", "cancelled"):
            raise ApiError(409, "not_cancellable", f"PO {po} is already {order['status']}")
        order["status"], order["updated_at"] = "cancelled", iso(self.clock.now)
        return self.order(po) or {}

    def _ship(
        self, order: dict, parcel: list[tuple[dict, int]], k: int, last: bool, roll: float, at: datetime
    ) -> None:
        if order["status"] == "cancelled":
            return
        carrier, _, _ = SHIPPING_CODES[order["shipping_code"]]
        rng = random.Random(f"{self.seed}:{order['po_number']}:{k}")
        if carrier == "UPS":
            tracking = "1Z" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=16))
        elif carrier == "FedEx":
            tracking = "".join(rng.choices(string.digits, k=12))
        else:
            tracking = "9400" + "".join(rng.choices(string.digits, k=18))
        self._shipment_no += 1
        shipment = {
            "shipment_id": f"SH-{self._shipment_no}",
            "po_number": order["po_number"],
            "carrier": carrier,
            "shipping_code": order["shipping_code"],
            "tracking_number": tracking,
            "status": "label_created",
            "ship_date": at.date().isoformat(),
            "updated_at": iso(at),
            "items": [
                {"line_number": ln["line_number"], "item_number": ln["item_number"], "quantity": qty}
                for ln, qty in parcel
            ],
        }
        self.shipments[shipment["shipment_id"]] = shipment
        self._set_status(order, "shipped" if last else "partially_shipped", at)
        for line in order["lines"]:
            if last and line["status"] == "accepted":
                line["status"] = "shipped"
        steps = [(10, "in_transit")]
        if roll < RETURN_SHARE:
            steps += [(30, "exception"), (70, "returned")]
        elif roll < EXCEPTION_SHARE:
            steps += [(30, "exception"), (60, "delivered")]
        else:
            steps += [(48, "delivered")]
        for hours, status in steps:
            self._at(at + timedelta(hours=hours), partial(self._move, shipment, status))

    def _move(self, shipment: dict, status: str, at: datetime) -> None:
        shipment["status"], shipment["updated_at"] = status, iso(at)

    def _invoice(self, order: dict, split: bool, at: datetime) -> None:
        if order["status"] == "cancelled":
            return
        carrier_fee = SHIPPING_CODES[order["shipping_code"]][2]
        self._invoice_no += 1
        lines = []
        for ln in order["_accepted"]:
            qty = self._qty(order, ln)
            unit = Decimal(ln["_unit_cost"])
            lines.append(
                {
                    "line_number": ln["line_number"],
                    "item_number": ln["item_number"],
                    "quantity": qty,
                    "unit_cost": money(unit),
                    "amount": money(unit * qty),
                }
            )
        fees = SPLIT_FEE if split else Decimal("0")
        total = sum((Decimal(ln["amount"]) for ln in lines), Decimal("0")) + carrier_fee + fees
        self.invoices[order["po_number"]] = {
            "invoice_number": f"INV-{self._invoice_no}",
            "po_number": order["po_number"],
            "invoice_date": at.date().isoformat(),
            "status": "unpaid",
            "currency": "USD",
            "lines": lines,
            "shipping": money(carrier_fee),
            "fees": money(fees),
            "tax": "0.00",
            "total": money(total),
            "updated_at": iso(at),
        }

    def _set_invoice_status(self, order: dict, status: str, at: datetime) -> None:
        invoice = self.invoices.get(order["po_number"])
        if invoice is None:  # cancelled before it was invoiced
            return
        invoice["status"], invoice["updated_at"] = status, iso(at)

    def advance(self, delta: timedelta) -> int:
        """Move the clock and apply every event that came due; returns how many were applied."""
        now = self.clock.advance(delta)
        applied = 0
        while self._events and self._events[0][0] <= now:
            when, _, action = heapq.heappop(self._events)
            action(when)
            applied += 1
        return applied

    # --- reads ------------------------------------------------------------------------------
    def order(self, po: str) -> dict | None:
        order = self.orders.get(po)
        return (
            None if order is None else {k: json_ready(v) for k, v in order.items() if not k.startswith("_")}
        )

    def order_shipments(self, po: str) -> list[dict]:
        return [json_ready(s) for s in self.shipments.values() if s["po_number"] == po]

    def invoice(self, po: str) -> dict | None:
        invoice = self.invoices.get(po)
        return (
            None if invoice is None else {k: v for k, v in json_ready(invoice).items() if k != "updated_at"}
        )
