"""Hook for the US Direct reseller API: feed, inventory changes, orders, shipments, invoices.

One ``usdirect`` connection holds the three credentials: the API Token (password), the Feed URL
and the Reseller Token (extras). All three are registered with the secret masker as soon as the
connection is read. See docs/usdirect-api.md for the contract.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from usdirect.domain.redaction import url_secrets
from usdirect.hooks import feed
from usdirect.hooks.base import ApiHook
from usdirect.hooks.errors import ConnectionConfigError, NotFoundError, UsDirectError
from usdirect.hooks.feed import FeedDownload, FeedValidators
from usdirect.hooks.feed_sniff import check_head_content_type
from usdirect.hooks.http import build_http_client
from usdirect.hooks.http_settings import HttpSettings, extra_value
from usdirect.hooks.paging import iso_timestamp, iter_keyset
from usdirect.hooks.ratelimit import limiter_for
from usdirect.hooks.secrets import register_secret

__all__ = ["FeedDownload", "FeedValidators", "UsDirectHook"]

RESELLER_TOKEN = "Reseller Token"  # noqa: S105 (a label, not a secret)
FEED_URL = "Feed URL"


class UsDirectHook(ApiHook):
    """US Direct API calls with retries, pacing (5 req/s per token by default) and typed errors."""

    conn_name_attr = "usdirect_conn_id"
    default_conn_name = "usdirect_default"
    conn_type = "usdirect"
    hook_name = "US Direct"
    service = "US Direct"
    default_rate = 5.0
    feed_label = FEED_URL

    def __init__(self, usdirect_conn_id: str = default_conn_name) -> None:
        super().__init__(usdirect_conn_id)
        self._feed_http: httpx.Client | None = None
        self._feed_lock = threading.Lock()

    # ---------------------------------------------------------------- connection and secrets

    def _register_extra_secrets(self, extras: dict[str, Any]) -> None:
        reseller_token = extra_value(extras, self.conn_type, "reseller_token")
        register_secret(str(reseller_token) if reseller_token else None)
        url = extra_value(extras, self.conn_type, "feed_url")
        for secret in url_secrets(str(url)) if url else ():
            register_secret(secret)

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _reseller_call(self, path: str, settings: HttpSettings | None = None) -> Any:
        """A call authorised by the Reseller Token, paced on that token's own schedule."""
        token = self.conn_field("reseller_token")
        if not token:
            raise ConnectionConfigError(
                f"{RESELLER_TOKEN} is empty on {self.where}: enter it in the Reseller Token field"
            )
        token = str(token).strip()
        return self.client.call(
            "GET",
            path,
            credential=RESELLER_TOKEN,
            headers={"X-Reseller-Token": token},
            settings=settings,
            limiter=limiter_for(self.conn_type, token, self.settings.rate_limit),
        ).body

    def _feed_url(self) -> str:
        url = self.conn_field("feed_url")
        if not url:
            raise ConnectionConfigError(
                f"{FEED_URL} is empty on {self.where}: enter it in the Feed URL field"
            )
        url = str(url).strip()
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConnectionConfigError(
                f"{FEED_URL} on {self.where} is not an absolute http(s) URL: copy it again from the "
                f"US Direct portal"
            )
        return url

    def _feed_client(self) -> httpx.Client:
        """A separate client for the feed: it may live on another host and gets no API Token."""
        with self._feed_lock:
            if self._feed_http is None:
                self._feed_http = build_http_client(self.settings, follow_redirects=True, where=self.where)
            return self._feed_http

    def close(self) -> None:
        super().close()
        with self._feed_lock:
            client, self._feed_http = self._feed_http, None
        if client is not None:
            client.close()

    # ---------------------------------------------------------------- test connection

    def test_connection(self) -> tuple[bool, str]:
        """Check the API Token, the Feed URL and the Reseller Token each on its own."""
        try:
            quick = self.settings.quick()
        except UsDirectError as exc:  # the connection itself is unusable: nothing else to try
            return False, str(exc)

        def api() -> str:
            body = self.api("GET", "/v1/ping", settings=quick) or {}
            return f"account {body.get('account_id', '?')} {body.get('account_name', '')}".strip()

        def feed_head() -> str:
            info = self._head_feed(quick)
            check_head_content_type(info["content_type"], where=self.where)
            size = info["content_length"]
            return f"{size:,} bytes" if isinstance(size, int) else "size not given"

        def reseller() -> str:
            body = self._reseller_ping(quick)
            return f"reseller {body.get('reseller_id', '?')}"

        return self._summary(
            [
                self._check("API Token", "every US Direct operation needs it", api),
                self._check(FEED_URL, "Get Inventory needs it", feed_head),
                self._check(RESELLER_TOKEN, "Get Invoice needs it", reseller),
            ]
        )

    # ---------------------------------------------------------------- pings and feed

    def ping(self) -> dict[str, Any]:
        """``GET /v1/ping`` with the API Token: account id and name."""
        return self.api("GET", "/v1/ping") or {}

    def reseller_ping(self) -> dict[str, Any]:
        """``GET /v1/reseller/ping`` with the Reseller Token."""
        return self._reseller_ping(None)

    def _reseller_ping(self, settings: HttpSettings | None) -> dict[str, Any]:
        return self._reseller_call("/v1/reseller/ping", settings) or {}

    def head_feed(self) -> dict[str, Any]:
        """``HEAD`` of the Feed URL: status, content_length, content_type, etag, last_modified."""
        return self._head_feed(None)

    def _head_feed(self, settings: HttpSettings | None) -> dict[str, Any]:
        return feed.head_feed(
            self._feed_client(),
            self._feed_url(),
            settings or self.settings,
            what="US Direct feed HEAD",
            where=self.where,
        )

    def download_feed(self, dest: Path, validators: FeedValidators | None = None) -> FeedDownload:
        """Stream the full feed into ``dest`` as plain CSV, verified complete.

        With ``validators`` from the last good load, an unchanged feed answers 304 and
        ``FeedDownload.not_modified`` is True (``path`` None). Persist the returned validators only
        after the file has been loaded successfully.
        """
        return feed.download_feed(
            self._feed_client(),
            self._feed_url(),
            Path(dest),
            validators,
            self.settings,
            what="US Direct feed download",
            where=self.where,
        )

    # ---------------------------------------------------------------- inventory and shipments

    def iter_inventory_changes(
        self, updated_since: datetime, limit: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of price/quantity changes since ``updated_since`` (see ``iter_keyset``)."""
        return self._iter_changes("/v1/inventory", "items", "sku", updated_since, limit, 1000)

    def iter_shipments(self, updated_since: datetime, limit: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Pages of shipments created or changed since ``updated_since``."""
        return self._iter_changes("/v1/shipments", "shipments", "shipment_id", updated_since, limit, 500)

    def _iter_changes(
        self, path: str, items_key: str, key: str, updated_since: datetime, limit: int, max_limit: int
    ) -> Iterator[list[dict[str, Any]]]:
        if not 1 <= limit <= max_limit:
            raise ValueError(f"limit must be between 1 and {max_limit} for {path}, got {limit}")
        since = iso_timestamp(updated_since)

        def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
            params: dict[str, Any] = {"updated_since": since, "limit": limit}
            if cursor:
                params["cursor"] = cursor
            body = self.api("GET", path, params=params) or {}
            return list(body.get(items_key) or []), body.get("next_cursor")

        return iter_keyset(fetch, key)

    def get_order_shipments(self, po_number: str) -> list[dict[str, Any]]:
        """All shipments of one order; empty when the order has none (or does not exist)."""
        try:
            body = self.api("GET", f"/v1/orders/{_seg(po_number)}/shipments") or {}
        except NotFoundError:
            return []
        return list(body.get("shipments") or [])

    # ---------------------------------------------------------------- orders and invoices

    def submit_order(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/orders`` once; returns the 201 body.

        Raises ``DuplicateError`` (409, ``existing_id`` = the order id), ``ValidationError``
        (422) or ``OutcomeUnknownError`` when the order may or may not have been created: look
        it up with :meth:`get_order` before submitting again. 429 and refused connections are
        retried (nothing was processed).
        """
        po_number = payload.get("po_number")
        headers = {"Idempotency-Key": str(po_number)} if po_number else None
        return self.api("POST", "/v1/orders", json_body=payload, headers=headers, submission=True) or {}

    def get_order(self, po_number: str) -> dict[str, Any] | None:
        """The order as US Direct has it, or None when that PO was never created."""
        try:
            return self.api("GET", f"/v1/orders/{_seg(po_number)}")
        except NotFoundError:
            return None

    def get_invoice(self, po_number: str) -> dict[str, Any] | None:
        """The invoice of a PO (Reseller Token), or None while it is not invoiced yet."""
        try:
            return self._reseller_call(f"/v1/invoices/{_seg(po_number)}")
        except NotFoundError:
            return None


def _seg(value: str) -> str:
    """A path segment: PO numbers are plain, but never let one change the path."""
    return quote(str(value), safe="")
