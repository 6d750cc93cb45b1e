"""What US Direct's contract refuses with 422, checked before an order is sent (docs/usdirect-api.md).

Pure rules on the mapped payload: each problem names the field and the fix, so a person can
correct the fulfillment request without reading a log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SHIPPING_CODES = ("UPS-GND", "UPS-2DA", "UPS-NDA", "FEDEX-GND", "FEDEX-EXP", "USPS-PRIORITY")
_LOWER_48_AND_DC = (
    "AL AZ AR CA CO CT DE DC FL GA ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
)
LOWER_48_AND_DC = frozenset(_LOWER_48_AND_DC.split(" "))
MILITARY_STATES = frozenset({"AA", "AE", "AP"})
PO_NUMBER = re.compile(r"^[A-Za-z0-9_-]{1,30}$")
PO_BOX = re.compile(r"\b(p\.?\s*o\.?\s*box|post\s+office\s+box|pob\s+\d)", re.IGNORECASE)
POSTAL_CODE = re.compile(r"^\d{5}(-\d{4})?$")
REQUIRED_SHIP_TO = ("name", "address1", "city", "state", "postal_code", "country")


@dataclass(frozen=True)
class Problem:
    """One bad field of an order: the field path and what to do about it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def validate_order(payload: dict[str, Any]) -> list[Problem]:
    """What US Direct's contract would refuse with 422, found before sending (empty = valid)."""
    problems: list[Problem] = []
    po = payload.get("po_number")
    if _blank(po):
        problems.append(Problem("po_number", "missing; set the fulfillment request number"))
    elif not PO_NUMBER.match(str(po)):
        problems.append(
            Problem(
                "po_number",
                f"{po!r} is not 1-30 characters of A-Z a-z 0-9 - _; "
                "renumber the request without spaces or other symbols",
            )
        )
    if _blank(payload.get("order_date")):
        problems.append(Problem("order_date", "missing; the request needs its order date"))
    code = payload.get("shipping_code")
    if _blank(code):
        problems.append(Problem("shipping_code", "missing; choose a shipping method on the request"))
    elif code not in SHIPPING_CODES:
        problems.append(
            Problem(
                "shipping_code",
                f"unknown shipping code {code!r}; use one of {', '.join(SHIPPING_CODES)} "
                "(map the platform code in include/mappings/value_maps.yaml shipping_codes)",
            )
        )
    problems += _validate_ship_to(payload.get("ship_to") or {})
    problems += _validate_lines(payload.get("lines") or [])
    return problems


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _validate_ship_to(ship_to: dict[str, Any]) -> list[Problem]:
    problems = [
        Problem(f"ship_to.{key}", "missing; complete the shipping address")
        for key in REQUIRED_SHIP_TO
        if _blank(ship_to.get(key))
    ]
    for key in ("address1", "address2"):
        value = ship_to.get(key)
        if isinstance(value, str) and PO_BOX.search(value):
            problems.append(
                Problem(
                    f"ship_to.{key}",
                    f"{value!r} is a PO Box; US Direct does not ship to PO Boxes, "
                    "ask the customer for a street address",
                )
            )
    postal = ship_to.get("postal_code")
    if not _blank(postal) and not POSTAL_CODE.match(str(postal).strip()):
        problems.append(
            Problem("ship_to.postal_code", f"{postal!r} is not a US ZIP code; use 5 digits or ZIP+4")
        )
    country = ship_to.get("country")
    if not _blank(country) and str(country).strip().upper() != "US":
        problems.append(
            Problem(
                "ship_to.country",
                f"{country!r} is outside the US; US Direct ships within the lower 48 only, "
                "send this order through another supplier",
            )
        )
    state = ship_to.get("state")
    if not _blank(state) and str(state).strip().upper() not in LOWER_48_AND_DC:
        where = (
            "a military (APO/FPO/DPO) address"
            if str(state).strip().upper() in MILITARY_STATES
            else "outside the lower 48 (Alaska, Hawaii and US territories are not served)"
            if len(str(state).strip()) == 2
            else "not a two-letter state code"
        )
        problems.append(
            Problem(
                "ship_to.state",
                f"{state!r} is {where}; US Direct ships to the lower 48 and DC only, "
                "correct the state or send this order through another supplier",
            )
        )
    return problems


def _validate_lines(lines: list[dict[str, Any]]) -> list[Problem]:
    if not lines:
        return [Problem("lines", "the request has no items; add at least one item")]
    problems: list[Problem] = []
    for line in lines:
        where = f"lines[{line.get('line_number')}]"
        if _blank(line.get("item_number")):
            problems.append(
                Problem(f"{where}.item_number", "missing; set the item's SKU to USD-<US Direct item number>")
            )
        qty = line.get("quantity")
        if qty is None or int(qty) < 1:
            problems.append(
                Problem(
                    f"{where}.quantity", f"{qty!r} is below 1; order at least one unit or remove the item"
                )
            )
    return problems


def format_problems(problems: Iterable[Problem | str]) -> str:
    return "; ".join(str(p) for p in problems)
