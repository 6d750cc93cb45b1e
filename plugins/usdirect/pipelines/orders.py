"""Send Orders: map fulfillment requests, refuse what US Direct would refuse, submit each PO once.

Exactly once, whatever fails: before an order is sent its ledger row is claimed, atomically,
as ``submitting`` with the attempt counted, in a committed transaction; a run that finds the
attempt count moved on leaves the PO to the run that claimed it, and a per-PO claim lock keeps
a run away from POs another live run is working on. So concurrent runs split the work and never
send the same PO. A submission whose outcome is unknown (timeout, reset, 5xx, or a worker killed
before it could record the answer) is never simply repeated: US Direct is asked
``GET /v1/orders/{po}`` first, and only a 404 allows another send. A ``409 duplicate_po`` means
the PO exists already and is recorded as submitted. Without a ledger (only when this function is
called without a warehouse) every PO is looked up before its first send.

A refused credential (401/403) stops the run at once: the first order is sent on its own, and a
refusal there or later sends nothing more; what was refused created nothing and goes back to
``pending``.

Orders are independent, so they are sent from a thread pool; the hook's per-token rate limiter
is shared by all threads of the process, which keeps the request rate under the API limit.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

from usdirect.domain import metrics
from usdirect.domain.fulfillment import LedgerState, LineStatus
from usdirect.domain.order_rules import format_problems, validate_order
from usdirect.domain.orders import (
    ClaimLocks,
    LineOutcome,
    OrderClient,
    OrderLedger,
    OrderOutcome,
    OrderRequest,
    OutcomeKind,
    SendReport,
)
from usdirect.domain.progress import Progress
from usdirect.hooks.errors import (
    AuthenticationError,
    DuplicateError,
    OutcomeUnknownError,
    RateLimitExhaustedError,
    TransientExhaustedError,
    UsDirectError,
    ValidationError,
)
from usdirect.targets.platform.orders import PlatformOrderRecorder
from usdirect.targets.warehouse.order_ledger import WarehouseOrders

log = logging.getLogger(__name__)

# Sends per PO within one run when US Direct confirms (GET 404) that an unknown outcome created nothing.
MAX_SENDS_PER_RUN = 3

# --- requests, payloads and outcomes ------------------------------------------------------------


class CredentialRefusedError(AuthenticationError):
    """A 401/403 stopped Send Orders: nothing more was sent; ``report`` holds what happened."""

    def __init__(self, cause: AuthenticationError, po_number: str, report: SendReport) -> None:
        self.report = report
        left = report.count(OutcomeKind.NOT_SENT)
        kind = next((o.kind for o in report.outcomes if o.po_number == po_number), None)
        states: dict[OutcomeKind | None, str] = {
            OutcomeKind.RETRY: "US Direct created nothing for it and it is pending again",
            OutcomeKind.UNRESOLVED: "it stays submitting, and the next run looks it up at US Direct "
            "before any send",
        }
        state = states.get(kind, "the next run finishes recording it")
        super().__init__(
            cause.credential,
            cause.status,
            f"{cause}. Send Orders stopped at PO {po_number}: {state}; {left} other order(s) were "
            f"not sent and stay as they were. They are sent by the first run after the "
            f"{cause.credential} is fixed",
        )


Recorder = Callable[[OrderOutcome], None]


def build_payloads(
    template: Any, requests: Sequence[OrderRequest]
) -> tuple[list[tuple[OrderRequest, dict[str, Any]]], list[OrderOutcome]]:
    """Map requests through the orders template and pre-validate: (ready to send, invalid)."""
    if not requests:
        return [], []
    result = template.map_records([r.fr for r in requests])
    invalid: list[OrderOutcome] = []
    for row in result.rejects.to_pylist():
        req = requests[int(row["row_number"]) - 1]
        invalid.append(
            OrderOutcome(
                req.po_number,
                req.fr_id,
                OutcomeKind.NEEDS_ATTENTION,
                attempts=req.attempts,
                message=_mapping_reason(row["reason"]),
            )
        )
    ready: list[tuple[OrderRequest, dict[str, Any]]] = []
    payloads = result.payloads(exclude=("row_number", "fr_id"))
    for row_number, payload in zip(result.mapped.column("row_number").to_pylist(), payloads, strict=True):
        req = requests[int(row_number) - 1]
        problems = validate_order(payload)
        if problems:
            invalid.append(
                OrderOutcome(
                    req.po_number,
                    req.fr_id,
                    OutcomeKind.NEEDS_ATTENTION,
                    attempts=req.attempts,
                    message=format_problems(problems),
                    payload=payload,
                )
            )
        else:
            ready.append((req, payload))
    return ready, invalid


def _mapping_reason(reason: str) -> str:
    """Mapping rejects say what is wrong; name the request field and the fix where they do not."""
    if reason.startswith("unknown shipping code"):
        return f"shipping_code (shippingMethod.shippingCode): {reason}"
    return f"{reason} (fix the fulfillment request, or the orders mapping template if the data is right)"


# --- submission ----------------------------------------------------------------------------------


def outcome_from_order(
    req: OrderRequest, body: dict[str, Any], attempts: int, found_existing: bool
) -> OrderOutcome:
    """An order as US Direct returned it (201 body or ``GET /v1/orders/{po}``)."""
    lines = [
        LineOutcome(
            int(line["line_number"]),
            line.get("item_number"),
            LineStatus.REJECTED if line.get("status") == LineStatus.REJECTED else LineStatus.ACCEPTED,
            line.get("reason"),
        )
        for line in body.get("lines") or []
    ]
    created = body.get("created_at")
    submitted_at = dt.datetime.fromisoformat(created) if isinstance(created, str) else dt.datetime.now(dt.UTC)
    outcome = OrderOutcome(
        req.po_number,
        req.fr_id,
        OutcomeKind.SUBMITTED,
        supplier_order_id=body.get("order_id"),
        order_status=body.get("status"),
        lines=lines,
        submitted_at=submitted_at,
        attempts=attempts,
        found_existing=found_existing,
    )
    rejected = [ln for ln in lines if ln.status == LineStatus.REJECTED]
    if outcome.cancelled:
        outcome.message = (
            f"US Direct cancelled order {outcome.supplier_order_id}: every line was rejected ("
            + ", ".join(f"line {ln.line_number} item {ln.item_number}: {ln.reason}" for ln in rejected)
            + "); source the items elsewhere"
        )
    elif rejected:
        outcome.message = "lines rejected by US Direct: " + ", ".join(
            f"line {ln.line_number} item {ln.item_number}: {ln.reason}" for ln in rejected
        )
    return outcome


class OrderSender:
    """Sends orders concurrently, each PO exactly once, and hands every outcome to the recorders."""

    def __init__(
        self,
        client: OrderClient,
        ledger: OrderLedger | None,
        recorders: Sequence[Recorder],
        max_workers: int = 4,
        claims: ClaimLocks | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.recorders = list(recorders)
        self.max_workers = max_workers
        self.claims = claims
        self._record_lock = threading.Lock()
        self._refused: tuple[AuthenticationError, str] | None = None  # (error, PO) that stopped the run

    def send(
        self, ready: Sequence[tuple[OrderRequest, dict[str, Any]]], invalid: Sequence[OrderOutcome]
    ) -> SendReport:
        """Record the invalid ones, then send the ready ones; one bad order never stops the rest.

        The first order goes alone: if US Direct refuses the credential, no other order is tried.
        Raises ``CredentialRefusedError`` after recording when a 401/403 stopped the run.
        """
        report = SendReport([self.record(outcome) for outcome in invalid])
        progress = Progress("order sending", len(ready), unit="orders")

        def send_one(req: OrderRequest, payload: dict[str, Any]) -> OrderOutcome:
            outcome = self._send_one(req, payload)
            progress.advance()
            return outcome

        if ready:
            report.outcomes.append(send_one(*ready[0]))
        if len(ready) > 1:
            with ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix="usdirect-order"
            ) as pool:
                report.outcomes += pool.map(lambda item: send_one(*item), ready[1:])
        progress.finish()
        metrics.incr(metrics.ORDERS_SUBMITTED, report.count(OutcomeKind.SUBMITTED))
        metrics.incr(metrics.ORDERS_NEEDS_ATTENTION, report.count(OutcomeKind.NEEDS_ATTENTION))
        if self._refused is not None:
            error, po = self._refused
            raise CredentialRefusedError(error, po, report) from error
        return report

    def record(self, outcome: OrderOutcome) -> OrderOutcome:
        """Hand the outcome to the recorders; a failure there leaves the PO for the next run."""
        try:
            with self._record_lock:
                for recorder in self.recorders:
                    recorder(outcome)
        except Exception as exc:
            log.exception("PO %s: could not record %s", outcome.po_number, outcome.kind)
            if isinstance(exc, AuthenticationError):  # the platform refused its token
                self._refuse(exc, outcome.po_number)
            return replace(
                outcome,
                kind=OutcomeKind.ERROR,
                message=f"{outcome.kind} but not recorded ({type(exc).__name__}: {exc})",
            )
        return outcome

    def _refuse(self, error: AuthenticationError, po_number: str) -> None:
        with self._record_lock:
            if self._refused is None:
                self._refused = (error, po_number)

    def _send_one(self, req: OrderRequest, payload: dict[str, Any]) -> OrderOutcome:
        if self._refused is not None:
            return OrderOutcome(
                req.po_number,
                req.fr_id,
                OutcomeKind.NOT_SENT,
                attempts=req.attempts,
                message=f"not sent: the run stopped after {self._refused[0].credential} was refused",
            )
        if self.claims is not None and not self.claims.acquire(req.po_number):
            return self._elsewhere(req, "another run is sending it right now")
        try:
            try:
                outcome = self._settle(req, payload)
            except Exception as exc:  # e.g. recording failed: the ledger still says what to check
                log.exception("PO %s: send failed", req.po_number)
                return OrderOutcome(
                    req.po_number,
                    req.fr_id,
                    OutcomeKind.ERROR,
                    attempts=req.attempts,
                    message=f"{type(exc).__name__}: {exc}",
                )
            if outcome.kind == OutcomeKind.CLAIMED_ELSEWHERE:
                return outcome
            outcome.payload = payload
            return self.record(outcome)
        finally:
            if self.claims is not None:
                self.claims.release(req.po_number)

    @staticmethod
    def _elsewhere(req: OrderRequest, why: str) -> OrderOutcome:
        log.info("PO %s: left alone, %s", req.po_number, why)
        return OrderOutcome(
            req.po_number, req.fr_id, OutcomeKind.CLAIMED_ELSEWHERE, attempts=req.attempts, message=why
        )

    def _lookup(self, req: OrderRequest, attempts: int) -> OrderOutcome | None:
        """The order if US Direct has it; None if it does not (404)."""
        body = self.client.get_order(req.po_number)
        return None if body is None else outcome_from_order(req, body, attempts, found_existing=True)

    def _settle(self, req: OrderRequest, payload: dict[str, Any]) -> OrderOutcome:
        po, attempts = req.po_number, req.attempts
        if req.state == LedgerState.SUBMITTING or self.ledger is None:
            try:
                found = self._lookup(req, attempts)
            except AuthenticationError as exc:
                self._refuse(exc, po)
                return OrderOutcome(
                    po,
                    req.fr_id,
                    OutcomeKind.UNRESOLVED if req.state == LedgerState.SUBMITTING else OutcomeKind.RETRY,
                    attempts=attempts,
                    message=f"not checked, nothing sent: {exc}",
                )
            except UsDirectError as exc:
                return OrderOutcome(
                    po,
                    req.fr_id,
                    OutcomeKind.UNRESOLVED if req.state == LedgerState.SUBMITTING else OutcomeKind.RETRY,
                    attempts=attempts,
                    message=f"could not check whether PO {po} already exists at US Direct: {exc}",
                )
            if found is not None:
                return found
        last_error = ""
        for _ in range(MAX_SENDS_PER_RUN):
            if self.ledger is not None:
                claimed = self.ledger.claim(po, attempts)
                if claimed is None:
                    return self._elsewhere(req, "another run claimed or settled it first")
                attempts = claimed
            else:
                attempts += 1
            try:
                body = self.client.submit_order(payload)
                return outcome_from_order(req, body, attempts, found_existing=False)
            except AuthenticationError as exc:  # refused before processing: nothing was created
                self._refuse(exc, po)
                return OrderOutcome(
                    po, req.fr_id, OutcomeKind.RETRY, attempts=attempts, message=f"not sent: {exc}"
                )
            except DuplicateError as exc:
                return self._already_there(req, attempts, exc)
            except ValidationError as exc:
                return OrderOutcome(
                    po,
                    req.fr_id,
                    OutcomeKind.NEEDS_ATTENTION,
                    attempts=attempts,
                    message=f"US Direct refused the order (nothing was created): {exc}",
                )
            except (RateLimitExhaustedError, TransientExhaustedError) as exc:
                return OrderOutcome(
                    po, req.fr_id, OutcomeKind.RETRY, attempts=attempts, message=f"not sent: {exc}"
                )
            except OutcomeUnknownError as exc:
                last_error = str(exc)
                log.warning("PO %s: outcome unknown (%s); asking US Direct before any retry", po, exc)
                try:
                    found = self._lookup(req, attempts)
                except UsDirectError as lookup_exc:
                    if isinstance(lookup_exc, AuthenticationError):
                        self._refuse(lookup_exc, po)
                    return OrderOutcome(
                        po,
                        req.fr_id,
                        OutcomeKind.UNRESOLVED,
                        attempts=attempts,
                        message=f"outcome unknown ({exc}) and the lookup failed ({lookup_exc}); "
                        "the next run checks US Direct before any retry",
                    )
                if found is not None:
                    return found
        return OrderOutcome(
            po,
            req.fr_id,
            OutcomeKind.RETRY,
            attempts=attempts,
            message=f"not created after {MAX_SENDS_PER_RUN} sends in this run: {last_error}",
        )

    def _already_there(self, req: OrderRequest, attempts: int, exc: DuplicateError) -> OrderOutcome:
        """409 duplicate_po: the PO exists; take its details from a lookup when possible."""
        try:
            found = self._lookup(req, attempts)
        except UsDirectError:
            found = None
        if found is not None:
            return found
        return OrderOutcome(
            req.po_number,
            req.fr_id,
            OutcomeKind.SUBMITTED,
            supplier_order_id=exc.existing_id,
            submitted_at=dt.datetime.now(dt.UTC),
            attempts=attempts,
            found_existing=True,
        )


def dry_run(
    ready: Sequence[tuple[OrderRequest, dict[str, Any]]], invalid: Sequence[OrderOutcome]
) -> SendReport:
    """Map and validate only: the payloads that would be sent and the problems, nothing recorded."""
    report = SendReport(list(invalid))
    report.outcomes += [
        OrderOutcome(req.po_number, req.fr_id, OutcomeKind.DRY_RUN, attempts=req.attempts, payload=payload)
        for req, payload in ready
    ]
    return report


@dataclass(frozen=True)
class SendOptions:
    """The run's knobs: the DAG's Params plus the configured concurrency."""

    dry_run: bool = False
    po_numbers: tuple[str, ...] = ()
    max_orders: int | None = None
    max_workers: int = 4


def send_orders(
    template: Any,
    usdirect: OrderClient,
    options: SendOptions,
    wh: Any | None = None,
    platform: Any | None = None,
) -> SendReport:
    """One Send Orders run for the configured targets.

    Source: the platform's Unprocessed requests when the platform is a target, else the
    warehouse's pending ones. The warehouse ``wh``, when given, is the ledger (platform requests
    are copied into it first; platform-only accounts pass their warehouse connection as ledger);
    without it every PO is looked up before its first send and concurrent runs are not excluded.
    """
    requests, settled = _collect(options, wh, platform)
    ready, invalid = build_payloads(template, requests)
    if options.dry_run:
        return dry_run(ready, invalid)
    recorders: list[Recorder] = []
    ledger = WarehouseOrders(wh) if wh is not None else None
    if ledger is not None:
        recorders.append(ledger)
    if platform is not None:
        recorders.append(PlatformOrderRecorder(platform))
    with ExitStack() as stack:
        claims = None
        if wh is not None:
            from usdirect.targets.warehouse.order_claims import claim_locks

            claims = stack.enter_context(claim_locks(wh))
        report = OrderSender(usdirect, ledger, recorders, options.max_workers, claims).send(ready, invalid)
    if settled:  # recorded in the warehouse by an earlier run, but the platform never heard
        announcer = OrderSender(usdirect, None, [PlatformOrderRecorder(platform)])
        report.outcomes += [announcer.record(outcome) for outcome in settled]
    return report


def _collect(
    options: SendOptions, wh: Any | None, platform: Any | None
) -> tuple[list[OrderRequest], list[OrderOutcome]]:
    """Requests to send, and requests the ledger already settled (re-announced to the platform)."""
    from usdirect.targets.warehouse import fulfillment_requests as fr_ledger

    if platform is None:
        if wh is None:
            raise ValueError("Send Orders needs a warehouse or a platform target")
        with wh.connect() as conn:
            entries = fr_ledger.open_fulfillment_requests(
                wh, conn, options.po_numbers or None, options.max_orders
            )
        return [
            OrderRequest(
                e.po_number,
                e.fr["id"],
                e.fr,
                LedgerState.SUBMITTING if e.status == LedgerState.SUBMITTING else LedgerState.PENDING,
                e.attempts,
            )
            for e in entries
        ], []

    from usdirect.targets.platform.orders import unprocessed_requests

    frs = unprocessed_requests(platform, options.po_numbers or None, options.max_orders)
    if wh is None:
        return [OrderRequest(fr["fulfillmentRequestNumber"], fr["id"], fr) for fr in frs], []
    with wh.connect() as conn:
        if not options.dry_run:  # a dry run writes nothing, not even the ledger's copy
            fr_ledger.import_fulfillment_requests(wh, conn, frs, source="platform")
        known = fr_ledger.ledger_rows(wh, conn, [fr["fulfillmentRequestNumber"] for fr in frs])
    requests: list[OrderRequest] = []
    settled: list[OrderOutcome] = []
    for fr in frs:
        po = fr["fulfillmentRequestNumber"]
        row = known.get(po)
        if row is None:
            requests.append(OrderRequest(po, fr["id"], fr))
        elif row.status == LedgerState.SUBMITTED:
            settled.append(
                OrderOutcome(
                    po,
                    fr["id"],
                    OutcomeKind.SUBMITTED,
                    supplier_order_id=row.supplier_order_id,
                    order_status=row.order_status,
                    attempts=row.attempts,
                    message=row.last_error,
                    found_existing=True,
                )
            )
        else:
            state = LedgerState.SUBMITTING if row.status == LedgerState.SUBMITTING else LedgerState.PENDING
            requests.append(OrderRequest(po, fr["id"], fr, state, row.attempts))
    return requests, settled
