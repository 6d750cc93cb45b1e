"""Hook for the Flxpoint-like platform API: variants, fulfillment requests, shipments, invoices.

Writes here are safe to retry: variant updates are PUTs, parents are upserts, status changes are
idempotent PATCHes, and shipments and source invoices answer 409 with the existing id when the
first attempt had in fact gone through. See docs/flxpoint-api.md for the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from usdirect.hooks.base import ApiHook
from usdirect.hooks.errors import DuplicateError, UsDirectError
from usdirect.hooks.paging import iter_numbered

MAX_VARIANTS_PER_CALL = 50
MAX_PARENTS_PER_CALL = 20
MAX_SKUS_PER_QUERY = 50
MAX_VARIANT_PAGE = 500
MAX_FR_PAGE = 100


class FlxpointHook(ApiHook):
    """Platform calls with retries, pacing (2 req/s per token by default) and typed errors."""

    conn_name_attr = "flxpoint_conn_id"
    default_conn_name = "flxpoint_default"
    conn_type = "flxpoint"
    hook_name = "Flxpoint-like platform"
    service = "Flxpoint"
    default_rate = 2.0

    def __init__(self, flxpoint_conn_id: str = default_conn_name) -> None:
        super().__init__(flxpoint_conn_id)

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"X-API-TOKEN": token}

    def test_connection(self) -> tuple[bool, str]:
        """Check the platform API token with ``GET /ping``."""
        try:
            quick = self.settings.quick()
        except UsDirectError as exc:
            return False, str(exc)

        def ping() -> str:
            body = self.api("GET", "/ping", settings=quick) or {}
            return f"account {body.get('accountId', '?')}, token type {body.get('tokenType', '?')}"

        return self._summary([self._check(self.token_label, "every delivery to the platform needs it", ping)])

    # ---------------------------------------------------------------- inventory

    def update_variants(self, variants: list[dict[str, Any]]) -> dict[str, Any]:
        """``PUT /inventory/variants`` (at most 50): ``{"updated": n, "notFound": [sku, ...]}``."""
        _check_batch(variants, MAX_VARIANTS_PER_CALL, "variants")
        return self.api("PUT", "/inventory/variants", json_body=variants) or {}

    def create_parents(self, parents: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /inventory/parents`` (at most 20; existing parents are updated in place)."""
        _check_batch(parents, MAX_PARENTS_PER_CALL, "parents")
        return self.api("POST", "/inventory/parents", json_body=parents) or {}

    def iter_variants(
        self, skus: list[str] | None = None, page_size: int = 500
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of variants (sorted by sku); only ``skus`` when given (queried 50 at a time)."""
        if not 1 <= page_size <= MAX_VARIANT_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_VARIANT_PAGE}, got {page_size}")
        if skus is not None and not skus:
            return
        groups: list[list[str] | None] = (
            [skus[i : i + MAX_SKUS_PER_QUERY] for i in range(0, len(skus), MAX_SKUS_PER_QUERY)]
            if skus
            else [None]
        )
        for group in groups:
            base: dict[str, Any] = {"pageSize": page_size}
            if group:
                base["skus"] = ",".join(group)
            yield from iter_numbered(self._page_fetcher("/inventory/variants", "variants", base))

    def variant_page(
        self, page: int, page_size: int = MAX_VARIANT_PAGE, skus: list[str] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of ``GET /inventory/variants`` and the total page count (to choose between
        listing everything and asking for SKUs 50 at a time)."""
        if skus is not None and not 1 <= len(skus) <= MAX_SKUS_PER_QUERY:
            raise ValueError(f"ask for 1 to {MAX_SKUS_PER_QUERY} skus per call, got {len(skus)}")
        params: dict[str, Any] = {"pageSize": page_size}
        if skus:
            params["skus"] = ",".join(skus)
        return self._page_fetcher("/inventory/variants", "variants", params)(page)

    # ---------------------------------------------------------------- fulfillment requests

    def iter_fulfillment_requests(
        self, status: str = "Unprocessed", source_name: str = "US Direct", page_size: int = 100
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of fulfillment requests in ``status`` for ``source_name`` (oldest first).

        The whole list is read before the first page is yielded: the caller changes request
        statuses while it works through them, which would shift later pages of a status-filtered
        list and skip requests. Duplicates across pages are dropped.
        """
        if not 1 <= page_size <= MAX_FR_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_FR_PAGE}, got {page_size}")
        params = {"status": status, "sourceName": source_name, "pageSize": page_size}
        seen: set[Any] = set()
        snapshot: list[dict[str, Any]] = []
        for page in iter_numbered(self._page_fetcher("/fulfillment-requests", "fulfillmentRequests", params)):
            for request in page:
                if request.get("id") not in seen:
                    seen.add(request.get("id"))
                    snapshot.append(request)
        for start in range(0, len(snapshot), page_size):
            yield snapshot[start : start + page_size]

    def mark_processed(self, fr_id: int, supplier_order_id: str | None) -> None:
        """Mark a fulfillment request Processed (idempotent), recording the supplier order id."""
        body = {"supplierOrderId": supplier_order_id} if supplier_order_id else None
        self.api("PATCH", f"/fulfillment-requests/{int(fr_id)}/processed", json_body=body)

    def flag_fulfillment_request(self, fr_id: int, status: str, message: str) -> None:
        """Set a fulfillment request to Failed / Additional Info Required with a reason."""
        self.api(
            "PATCH",
            f"/fulfillment-requests/{int(fr_id)}/status",
            json_body={"status": status, "message": message},
        )

    # ---------------------------------------------------------------- shipments and invoices

    def create_shipment(self, body: dict[str, Any]) -> tuple[int, bool]:
        """``POST /shipments``: (id, True) when created, (existing id, False) on a known tracking no."""
        return self._create("/shipments", body)

    def update_shipment_status(self, shipment_id: int, status: str) -> None:
        self.api("PATCH", f"/shipments/{int(shipment_id)}", json_body={"status": status})

    def create_source_invoice(self, body: dict[str, Any]) -> tuple[int, bool]:
        """``POST /source-invoices``: (id, True), or (existing id, False) for a known invoice number."""
        return self._create("/source-invoices", body)

    def update_source_invoice_status(self, invoice_id: int, invoice_status: str) -> None:
        self.api("PATCH", f"/source-invoices/{int(invoice_id)}", json_body={"invoiceStatus": invoice_status})

    # ---------------------------------------------------------------- helpers

    def _create(self, path: str, body: dict[str, Any]) -> tuple[int, bool]:
        try:
            created = self.api("POST", path, json_body=body) or {}
        except DuplicateError as exc:
            if exc.existing_id is None:
                raise
            return int(exc.existing_id), False
        return int(created["id"]), True

    def _page_fetcher(
        self, path: str, items_key: str, params: dict[str, Any]
    ) -> Callable[[int], tuple[list[dict[str, Any]], int]]:
        def fetch(page: int) -> tuple[list[dict[str, Any]], int]:
            body = self.api("GET", path, params={**params, "page": page}) or {}
            return list(body.get(items_key) or []), int(body.get("totalPages") or 0)

        return fetch


def _check_batch(items: list[dict[str, Any]], limit: int, what: str) -> None:
    if len(items) > limit:
        raise ValueError(f"at most {limit} {what} per call, got {len(items)}: split the batch")
