"""The Flxpoint-like platform's records and rules: variants, fulfillment requests, shipments, invoices.

Seeded deterministically from the catalog: Unprocessed fulfillment requests for "US Direct" that
order real catalog SKUs (with the USD- prefix) using the platform's shipping codes, plus a
fixed set of deliberately bad requests and a few from another source that must be left alone.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from sandbox.catalog import ACTIVE, DISCONTINUED, SKU_BASE, Catalog
from sandbox.common import ApiError, iso, json_ready

PREFIX = "USD-"
SOURCE = "US Direct"
FR_STATUSES = ("Unprocessed", "Processing", "Processed", "Failed", "Additional Info Required", "Canceled")
FLAG_STATUSES = ("Failed", "Additional Info Required")
SHIPMENT_STATUSES = ("Label Created", "Shipped", "In Transit", "Delivered", "Exception", "Returned")
INVOICE_STATUSES = ("Unpaid", "Paid", "Credited")
MODIFY_FLAGS = ("none", "update", "updateNonNull")
VARIANT_FIELDS = {
    "cost": "Cost",
    "msrp": "Msrp",
    "map": "Map",
    "quantity": "Quantity",
    "archived": "Archived",
}
MAX_VARIANTS, MAX_PARENTS, MAX_FR_PAGE, MAX_VARIANT_PAGE = 50, 20, 100, 500
SHIPPING = [
    ("UPSG", "UPS", "Ground"),
    ("UPS2", "UPS", "2nd Day Air"),
    ("UPSN", "UPS", "Next Day Air"),
    ("FEDG", "FedEx", "Ground"),
    ("FEDX", "FedEx", "Express"),
    ("USPSP", "USPS", "Priority Mail"),
]
ADDRESSES = [
    ("Dana Reyes", None, "123 Main St", "Apt 4", "Austin", "TX", "78701", "512-555-0100"),
    ("Sam Okafor", "Okafor Design", "88 Harbor Way", None, "Portland", "ME", "04101", "207-555-0142"),
    ("Lena Müller", None, "400 Elm Ave", "Suite 210", "Denver", "CO", "80202", "303-555-0199"),
    ("José García", None, "9 Orchard Ln", None, "Fresno", "CA", "93721", "559-555-0123"),
    (
        "Priya Natarajan",
        "Natarajan & Co",
        "1500 Lake Shore Dr",
        "Fl 3",
        "Chicago",
        "IL",
        "60610",
        "312-555-0177",
    ),
]
VARIANT_SHAPE = dict.fromkeys(
    ("sku", "parentSku", "title", "upc", "mpn", "cost", "msrp", "map", "quantity", "weight", "weightUnit")
) | {"archived": False}
# How seeded stale variants differ from the catalog (``--stale-platform``); discontinued SKUs are
# always seeded live ("live_discontinued"), the others cycle through the rest.
STALE_KINDS = ("stale_quantity", "stale_cost", "stale_msrp_map", "archived_active", "current")
OTHER_SUPPLIER_SKUS = ("ACME-1", "ACME-2", "ACME-3")
BAD_KINDS = (
    "po_box",
    "alaska",
    "missing_postal_code",
    "unknown_shipping_code",
    "unknown_sku",
    "zero_quantity",
)


def _problem(field: str, message: str) -> ApiError:
    return ApiError(422, "validation_failed", f"{field}: {message}", [{"field": field, "message": message}])


def _is_money(value: Any, nullable: bool = False) -> bool:
    if value is None:
        return nullable
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return ok and math.isclose(round(value, 2), value, abs_tol=1e-9)


def _page_of(items: list[dict], page: int, page_size: int) -> tuple[list[dict], int]:
    total_pages = max(1, math.ceil(len(items) / page_size))
    return items[(page - 1) * page_size : page * page_size], total_pages


class Platform:
    """In-memory platform account; methods raise ApiError exactly as the API answers."""

    def __init__(
        self, catalog: Catalog, start: datetime, seed: int, good: int, bad: bool, stale: float = 0.0
    ) -> None:
        self.catalog, self.start, self.seed = catalog, start, seed
        self.variants: dict[str, dict] = {}
        self.parents: dict[str, dict] = {}
        self.frs: list[dict] = []
        self.shipments: dict[int, dict] = {}
        self.invoices: dict[int, dict] = {}
        self._rng = random.Random(f"{seed}:platform")
        self._fr_id, self._item_id, self._shipment_id, self._invoice_id = 880000, 990000, 5500, 7300
        self._number = 54000
        self._candidates = self._orderable()
        for _ in range(good):
            self.add_fr(self._good_fr())
        if bad:
            for kind in BAD_KINDS:
                self.add_fr(self._bad_fr(kind))
        for _ in range(2):
            self.add_fr(self._good_fr() | {"sourceName": "Acme Wholesale"})
        self.stale_kinds: dict[str, str] = {}
        if stale > 0:
            self._seed_stale(stale)

    def _seed_stale(self, share: float) -> None:
        """A platform that already holds variants: ``share`` of the offered SKUs, most of them
        stale (``STALE_KINDS``), plus a few variants of another supplier that must stay untouched."""
        c = self.catalog
        offered = np.flatnonzero(c.present)
        count = min(len(offered), max(1, round(len(offered) * share)))
        picks = np.sort(np.random.default_rng(self.seed + 17).choice(offered, size=count, replace=False))
        for n, index in enumerate(picks):
            row = self.catalog.item(int(index))
            kind = (
                "live_discontinued" if c.status[index] == DISCONTINUED else STALE_KINDS[n % len(STALE_KINDS)]
            )
            msrp = None if row["msrp"] is None else float(row["msrp"])
            variant = {
                "sku": PREFIX + row["sku"],
                "title": row["title"],
                "upc": row["upc"],
                "mpn": row["mpn"],
                "cost": float(row["cost"]),
                "msrp": msrp,
                "map": None if row["map"] is None else float(row["map"]),
                "quantity": min(row["quantity"], 100),
                "weight": row["weight_lb"],
                "weightUnit": "pound",
                "archived": False,
            }
            if kind == "stale_quantity":
                variant["quantity"] = variant["quantity"] + 1 if variant["quantity"] < 100 else 60
            elif kind == "stale_cost":
                variant["cost"] = round(variant["cost"] + 1.25, 2)
            elif kind == "stale_msrp_map":
                variant["msrp"] = 99.99 if msrp is None else None
                variant["map"] = 1.11 if variant["map"] is None else None
            elif kind == "live_discontinued":
                variant["quantity"] = 7
            elif kind == "archived_active":
                variant |= {"archived": True, "quantity": 0}
            self._put_parent(
                {
                    "sku": variant["sku"],
                    "title": row["title"],
                    "manufacturer": row["brand"],
                    "variants": [variant],
                }
            )
            self.stale_kinds[variant["sku"]] = kind
        for n, sku in enumerate(OTHER_SUPPLIER_SKUS):
            other = {"sku": sku, "title": f"Other supplier item {n}", "cost": 5.0 + n, "quantity": 3 + n}
            self._put_parent({"sku": sku, "title": other["title"], "variants": [other]})

    # --- seeding ----------------------------------------------------------------------------
    def _orderable(self) -> np.ndarray:
        c = self.catalog
        idx = np.flatnonzero(c.present & (c.status == ACTIVE) & (c.quantity >= 10))
        return idx[c.weights(idx) < 8][:500]

    def _item(self, index: int, quantity: int) -> dict:
        row = self.catalog.item(int(index))
        self._item_id += 1
        sku = PREFIX + row["sku"]
        if sku not in self.variants:
            self._put_parent(
                {
                    "sku": sku,
                    "title": row["title"],
                    "manufacturer": row["brand"],
                    "variants": [
                        {
                            "sku": sku,
                            "title": row["title"],
                            "upc": row["upc"],
                            "mpn": row["mpn"],
                            "cost": float(row["cost"]),
                            "msrp": None if row["msrp"] is None else float(row["msrp"]),
                            "map": None if row["map"] is None else float(row["map"]),
                            "quantity": min(row["quantity"], 100),
                            "weight": row["weight_lb"],
                            "weightUnit": "pound",
                        }
                    ],
                }
            )
        return {
            "id": self._item_id,
            "sku": sku,
            "quantity": quantity,
            "cost": float(row["cost"]),
            "title": row["title"],
        }

    def _good_fr(self) -> dict:
        rng = self._rng
        self._number += 1
        name, company, line1, line2, city, state, postal, phone = rng.choice(ADDRESSES)
        code, carrier, method = SHIPPING[self._number % len(SHIPPING)]
        picks = rng.sample(list(self._candidates), k=min(len(self._candidates), rng.randint(1, 3)))
        return {
            "fulfillmentRequestNumber": f"{self._number}-1",
            "orderNumber": f"SHOP-{self._number + 45000}",
            "status": "Unprocessed",
            "sourceName": SOURCE,
            "shippingMethod": {"carrier": carrier, "method": method, "shippingCode": code},
            "shippingAddress": {
                "name": name,
                "companyName": company,
                "addressLine1": line1,
                "addressLine2": line2,
                "city": city,
                "stateCode": state,
                "postal": postal,
                "countryCode": "US",
                "phone": phone,
                "email": f"customer{self._number}@example.com",
            },
            "items": [self._item(i, rng.randint(1, 3)) for i in picks],
        }

    def _bad_fr(self, kind: str) -> dict:
        fr = self._good_fr()
        address, items = fr["shippingAddress"], fr["items"]
        if kind == "po_box":
            address |= {"addressLine1": "PO Box 1234", "addressLine2": None}
        elif kind == "alaska":
            address |= {"city": "Anchorage", "stateCode": "AK", "postal": "99501"}
        elif kind == "missing_postal_code":
            address["postal"] = None
        elif kind == "unknown_shipping_code":
            fr["shippingMethod"] = {"carrier": "DHL", "method": "Express", "shippingCode": "DHLX"}
        elif kind == "unknown_sku":
            items[0] |= {"sku": f"{PREFIX}{SKU_BASE + 9_999_999}", "title": "Discontinued Gadget"}
        else:
            items[0]["quantity"] = 0
        fr["sandboxDefect"] = kind
        return fr

    def add_fr(self, fr: dict) -> dict:
        """Store a fulfillment request, assigning id, insertedAt and item ids where missing."""
        self._fr_id += 1
        fr = {"id": self._fr_id} | json_ready(fr)
        fr.setdefault("status", "Unprocessed")
        fr.setdefault(
            "insertedAt", iso(self.start - timedelta(hours=6) + timedelta(minutes=7 * len(self.frs)))
        )
        for item in fr.get("items", []):
            if "id" not in item:
                self._item_id += 1
                item["id"] = self._item_id
        self.frs.append(fr)
        return fr

    def seed_more(self, count: int) -> list[dict]:
        return [self.add_fr(self._good_fr()) for _ in range(count)]

    # --- inventory --------------------------------------------------------------------------
    def update_variants(self, body: Any) -> dict:
        if not isinstance(body, list):
            raise _problem("body", "must be a JSON array of variants")
        if len(body) > MAX_VARIANTS:
            raise ApiError(
                422,
                "batch_too_large",
                f"at most {MAX_VARIANTS} variants per request, got {len(body)}",
                [{"field": "body", "message": f"at most {MAX_VARIANTS} items"}],
            )
        changes = [self._variant_change(i, v) for i, v in enumerate(body)]
        updated, not_found = 0, []
        for sku, values in changes:
            variant = self.variants.get(sku)
            if variant is None:
                not_found.append(sku)
                continue
            variant.update(values)
            updated += 1
        return {"updated": updated, "notFound": not_found}

    def _variant_change(self, i: int, v: Any) -> tuple[str, dict]:
        if not isinstance(v, dict) or not isinstance(v.get("sku"), str) or not v["sku"]:
            raise _problem(f"[{i}].sku", "required")
        values: dict[str, Any] = {}
        for field, cap in VARIANT_FIELDS.items():
            flag = v.get(f"modify{cap}", "none")
            if flag not in MODIFY_FLAGS:
                raise _problem(f"[{i}].modify{cap}", f"must be one of {', '.join(MODIFY_FLAGS)}")
            value = v.get(field)
            if flag == "none" or (flag == "updateNonNull" and value is None):
                continue
            if field == "quantity" and value is not None and (not isinstance(value, int) or value < 0):
                raise _problem(f"[{i}].quantity", "must be an integer ≥ 0")
            if field == "archived" and not isinstance(value, bool):
                raise _problem(f"[{i}].archived", "must be true or false")
            if field in ("cost", "msrp", "map") and not _is_money(value, nullable=True):
                raise _problem(f"[{i}].{field}", "must be a number ≥ 0 with at most 2 decimals")
            values[field] = value
        return v["sku"], values

    def create_parents(self, body: Any) -> dict:
        if not isinstance(body, list):
            raise _problem("body", "must be a JSON array of parents")
        if len(body) > MAX_PARENTS:
            raise ApiError(
                422,
                "batch_too_large",
                f"at most {MAX_PARENTS} parents per request, got {len(body)}",
                [{"field": "body", "message": f"at most {MAX_PARENTS} items"}],
            )
        for i, parent in enumerate(body):
            if not isinstance(parent, dict) or not parent.get("sku") or not parent.get("title"):
                raise _problem(f"[{i}]", "sku and title are required")
            variants = parent.get("variants")
            if (
                not isinstance(variants, list)
                or not variants
                or not all(isinstance(v, dict) and v.get("sku") for v in variants)
            ):
                raise _problem(f"[{i}].variants", "at least one variant with a sku is required")
            for field in ("cost", "msrp", "map"):
                for j, v in enumerate(variants):
                    if not _is_money(v.get(field), nullable=True):
                        raise _problem(
                            f"[{i}].variants[{j}].{field}", "must be a number ≥ 0 with at most 2 decimals"
                        )
        created = sum(1 for parent in body if self._put_parent(parent))
        return {"created": created, "updated": len(body) - created}

    def _put_parent(self, parent: dict) -> bool:
        """Create or update a parent and its variants; True when the parent is new."""
        is_new = parent["sku"] not in self.parents
        self.parents[parent["sku"]] = {
            "sku": parent["sku"],
            "title": parent["title"],
            "manufacturer": parent.get("manufacturer"),
            "variantSkus": [v["sku"] for v in parent["variants"]],
        }
        for v in parent["variants"]:
            current = self.variants.get(v["sku"], VARIANT_SHAPE)
            given = {k: val for k, val in json_ready(v).items() if k in VARIANT_SHAPE}
            self.variants[v["sku"]] = current | given | {"parentSku": parent["sku"]}
        return is_new

    def list_variants(self, skus: str | None, page: int, page_size: int) -> dict:
        if page < 1 or not 1 <= page_size <= MAX_VARIANT_PAGE:
            raise _problem("pageSize", f"page must be ≥ 1 and pageSize 1-{MAX_VARIANT_PAGE}")
        if skus is not None:
            wanted = [s for s in skus.split(",") if s]
            if len(wanted) > MAX_VARIANTS:
                raise _problem("skus", f"at most {MAX_VARIANTS} skus per request")
            rows = [self.variants[s] for s in sorted(set(wanted)) if s in self.variants]
        else:
            rows = [self.variants[s] for s in sorted(self.variants)]
        chunk, total = _page_of(rows, page, page_size)
        return {"variants": json_ready(chunk), "page": page, "totalPages": total}

    # --- fulfillment requests ---------------------------------------------------------------
    def list_frs(self, status: str | None, source: str | None, page: int, page_size: int) -> dict:
        if status is not None and status not in FR_STATUSES:
            raise _problem("status", f"must be one of {', '.join(FR_STATUSES)}")
        if page < 1 or not 1 <= page_size <= MAX_FR_PAGE:
            raise _problem("pageSize", f"page must be ≥ 1 and pageSize 1-{MAX_FR_PAGE}")
        rows = [
            fr
            for fr in sorted(self.frs, key=lambda f: (f["insertedAt"], f["id"]))
            if (status is None or fr["status"] == status) and (source is None or fr["sourceName"] == source)
        ]
        chunk, total = _page_of(rows, page, page_size)
        public = [{k: v for k, v in fr.items() if k not in ("sandboxDefect",)} for fr in chunk]
        return {"fulfillmentRequests": json_ready(public), "page": page, "totalPages": total}

    def _fr(self, fr_id: int) -> dict:
        for fr in self.frs:
            if fr["id"] == fr_id:
                return fr
        raise ApiError(404, "not_found", f"fulfillment request {fr_id} does not exist")

    def mark_processed(self, fr_id: int, body: Any) -> dict:
        fr = self._fr(fr_id)
        supplier_order_id = body.get("supplierOrderId") if isinstance(body, dict) else None
        fr["status"] = "Processed"
        if supplier_order_id is not None:
            fr["supplierOrderId"] = supplier_order_id
        return {"id": fr_id, "status": fr["status"]}

    def flag(self, fr_id: int, body: Any) -> dict:
        fr = self._fr(fr_id)
        if not isinstance(body, dict) or body.get("status") not in FLAG_STATUSES:
            raise _problem("status", f"must be one of {', '.join(FLAG_STATUSES)}")
        if not isinstance(body.get("message"), str) or not body["message"]:
            raise _problem("message", "required")
        fr["status"], fr["statusMessage"] = body["status"], body["message"]
        return {"id": fr_id, "status": fr["status"]}

    def _fr_by_number(self, number: Any) -> dict:
        for fr in self.frs:
            if fr["fulfillmentRequestNumber"] == number:
                return fr
        raise ApiError(404, "not_found", f"fulfillment request {number!r} does not exist")

    # --- shipments and invoices -------------------------------------------------------------
    def create_shipment(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise _problem("body", "must be a JSON object")
        shipment = body.get("shipment")
        if (
            not isinstance(shipment, dict)
            or not shipment.get("trackingNumber")
            or not shipment.get("carrier")
        ):
            raise _problem("shipment", "trackingNumber and carrier are required")
        if shipment.get("status") is not None and shipment["status"] not in SHIPMENT_STATUSES:
            raise _problem("shipment.status", f"must be one of {', '.join(SHIPMENT_STATUSES)}")
        items = body.get("shipmentItems")
        if (
            not isinstance(items, list)
            or not items
            or not all(
                isinstance(i, dict)
                and i.get("sku")
                and isinstance(i.get("quantity"), int)
                and i["quantity"] >= 1
                for i in items
            )
        ):
            raise _problem("shipmentItems", "at least one item with sku and quantity ≥ 1 is required")
        self._fr_by_number(body.get("fulfillmentRequestNumber"))
        if not body.get("allowDuplicateTrackingNumbers", False):
            for existing in self.shipments.values():
                if existing["shipment"]["trackingNumber"] == shipment["trackingNumber"]:
                    raise ApiError(
                        409,
                        "duplicate_tracking_number",
                        f"tracking number already recorded on shipment {existing['id']}",
                        [
                            {
                                "field": "shipment.trackingNumber",
                                "message": "already recorded",
                                "id": existing["id"],
                            }
                        ],
                    )
        self._shipment_id += 1
        self.shipments[self._shipment_id] = json_ready(body) | {"id": self._shipment_id}
        return {"id": self._shipment_id}

    def update_shipment(self, shipment_id: int, body: Any) -> dict:
        record = self.shipments.get(shipment_id)
        if record is None:
            raise ApiError(404, "not_found", f"shipment {shipment_id} does not exist")
        if not isinstance(body, dict) or body.get("status") not in SHIPMENT_STATUSES:
            raise _problem("status", f"must be one of {', '.join(SHIPMENT_STATUSES)}")
        record["shipment"]["status"] = body["status"]
        return {"id": shipment_id, "status": body["status"]}

    def create_invoice(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise _problem("body", "must be a JSON object")
        for field in ("invoiceNumber", "fulfillmentRequestNumber", "invoiceDate"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise _problem(field, "required")
        if body.get("invoiceStatus") not in INVOICE_STATUSES:
            raise _problem("invoiceStatus", f"must be one of {', '.join(INVOICE_STATUSES)}")
        parts = ("totalProductCost", "totalShippingCost", "totalFeeCost", "totalTaxCost")
        for field in ("totalCost", *parts):
            if not _is_money(body.get(field)):
                raise _problem(field, "must be a number ≥ 0 with at most 2 decimals")
        if not math.isclose(body["totalCost"], sum(body[p] for p in parts), abs_tol=0.005):
            raise _problem("totalCost", "must equal product + shipping + fee + tax")
        items = body.get("invoiceItems")
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and _is_money(i.get("cost")) for i in items
        ):
            raise _problem("invoiceItems", "a list of items with cost is required")
        products = sum(i["cost"] for i in items if i.get("invoiceItemType", "Product") == "Product")
        if not math.isclose(products, body["totalProductCost"], abs_tol=0.005):
            raise _problem("totalProductCost", "must equal the sum of Product item costs")
        self._fr_by_number(body["fulfillmentRequestNumber"])
        for existing in self.invoices.values():
            if existing["invoiceNumber"] == body["invoiceNumber"]:
                raise ApiError(
                    409,
                    "duplicate_invoice_number",
                    f"invoice number already recorded as {existing['id']}",
                    [{"field": "invoiceNumber", "message": "already recorded", "id": existing["id"]}],
                )
        self._invoice_id += 1
        self.invoices[self._invoice_id] = json_ready(body) | {"id": self._invoice_id}
        return {"id": self._invoice_id}

    def update_invoice(self, invoice_id: int, body: Any) -> dict:
        record = self.invoices.get(invoice_id)
        if record is None:
            raise ApiError(404, "not_found", f"source invoice {invoice_id} does not exist")
        if not isinstance(body, dict) or body.get("invoiceStatus") not in INVOICE_STATUSES:
            raise _problem("invoiceStatus", f"must be one of {', '.join(INVOICE_STATUSES)}")
        record["invoiceStatus"] = body["invoiceStatus"]
        return {"id": invoice_id, "invoiceStatus": body["invoiceStatus"]}
