"""Turns a task's error into the cause in plain words and the fix from the README's troubleshooting guide.

Alerts are read by someone who was not watching the run, often on a phone: they need to know what
broke and what to do without opening the code. Errors are matched by class name (walking the MRO),
so this module imports none of the hooks, mapping or pipeline code and stays cheap for callbacks.
Nothing here ever includes a credential: only credential *names* and connection ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from usdirect.domain.operations import SPECS
from usdirect.settings.config import Account

GUIDE = "README.md"
SECTIONS = {
    "auth": "connection-not-authenticating",
    "inventory": "inventory-not-importing-or-fields-missing",
    "orders": "orders-not-sending",
    "shipments": "no-tracking-updates",
    "invoices": "invoices-not-pulling-or-not-mapping",
    "setup": "tasks-stay-queued-or-a-connection-is-missing",
}
_WHERE = re.compile(r"the (\w+) connection '([^']+)'")
_CONN_UNDEFINED = re.compile(r"conn(?:ection)?_?id [`'\"]?([\w.-]+)[`'\"]? (?:isn't|is not) defined", re.I)
_MAX_CAUSE = 600


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong (``cause``), what to do (``fix``) and the guide section that says more."""

    cause: str
    fix: str
    section: str

    @property
    def guide(self) -> str:
        """The README anchor of the guide section (GitHub heading anchors)."""
        return f"{GUIDE}#{SECTIONS[self.section]}"


def _section(operation: str) -> str:
    """The guide section of the operation's own problems ("setup" for a name that is no operation)."""
    spec = SPECS.get(operation)
    return spec.guide_section if spec else "setup"


def _names(error: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def typed_cause(error: BaseException) -> BaseException:
    """The package's own error behind an ``AirflowFailException``.

    ``operation_run`` fails errors that waiting cannot fix with ``AirflowFailException`` (no
    retries) raised ``from`` the typed error; the cause and fix belong to that typed error.
    """
    seen: set[int] = set()
    while "AirflowFailException" in _names(error) and error.__cause__ is not None and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__
    return error


def _first_line(error: BaseException) -> str:
    return _clip(str(error).strip() or type(error).__name__)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_CAUSE else text[: _MAX_CAUSE - 1] + "…"


def _connection_named(message: str, fallback: str) -> tuple[str, str]:
    """(conn type, conn id) that an error message points at, else the account's US Direct connection."""
    found = _WHERE.search(message)
    return (found.group(1), found.group(2)) if found else ("usdirect", fallback)


def _auth(error: BaseException, account: Account) -> Diagnosis:
    credential = str(getattr(error, "credential", "") or "credential")
    status = int(getattr(error, "status", 0) or 0)
    conn_type, conn_id = _connection_named(str(error), account.usdirect_conn_id)
    service = "the platform" if conn_type == "flxpoint" else "US Direct"
    if status == 403:
        return Diagnosis(
            cause=f"{credential} is valid but has no access to this resource at {service} (403)",
            fix=f"ask {service} to enable this resource for the account behind the {credential} on "
            f"connection {conn_id}, or enter the {credential} of the entitled account there",
            section="auth",
        )
    if credential == "Feed URL":
        return Diagnosis(
            cause=f"Feed URL rejected by US Direct ({status or 'refused'}); its key has probably changed",
            fix=f"copy the current Feed URL from the US Direct reseller portal into connection {conn_id}, "
            "then press Test on the connection",
            section="auth",
        )
    return Diagnosis(
        cause=f"{credential} rejected by {service} ({status or 'missing'})",
        fix=f"update it on connection {conn_id}, then press Test on the connection",
        section="auth",
    )


def diagnose(error: BaseException | None, account: Account, operation: str) -> Diagnosis:
    """Cause and fix for an error raised while running ``operation`` for ``account``."""
    op_section = _section(operation)
    if error is None:
        return Diagnosis(
            cause="the task failed without an error (killed, timed out or marked failed by hand)",
            fix="open the log; if the worker was killed (memory, restart), clear the task to run it again",
            section="setup",
        )
    error = typed_cause(error)
    names = _names(error)
    message = _first_line(error)
    if "CredentialRefusedError" in names:  # Send Orders stopped at the first refused order
        found = _auth(error, account)
        return Diagnosis(
            cause=found.cause,
            fix=f"{found.fix}. Nothing was sent: the orders stay pending and go out with the next run "
            "after the fix (trigger usdirect_send_orders to send them now)",
            section=found.section,
        )
    if "AuthenticationError" in names:
        return _auth(error, account)
    if "ConnectionConfigError" in names:
        return Diagnosis(cause=f"connection incomplete: {message}", fix=message, section="auth")
    undefined = _CONN_UNDEFINED.search(str(error))
    if undefined or "AirflowNotFoundException" in names:
        conn_id = undefined.group(1) if undefined else "named in the log"
        return Diagnosis(
            cause=f"connection {conn_id} does not exist in this Airflow",
            fix=f"create connection {conn_id} (Admin → Connections), or point the account "
            f"'{account.id}' at another connection id in include/usdirect.yaml",
            section="setup",
        )
    if "RejectShareExceededError" in names:
        return Diagnosis(
            cause=f"too many rows were rejected for the run to be trusted: {message}",
            fix="read the reasons in table usdirect_rejects for this run id; fix the mapping template "
            "named in include/usdirect.yaml (or the source data), then clear the task. Raise "
            f"operations.{operation}.max_reject_share only if such rejects are expected",
            section=op_section,
        )
    if "FeedShrinkError" in names:
        return Diagnosis(
            cause=f"feed guard tripped, nothing was archived or zeroed: {message}",
            fix="check the feed with US Direct (a broken export is the usual cause); if the catalog "
            'really shrank, trigger usdirect_get_inventory with the Param {"allow_shrink": true} '
            "(Trigger DAG w/ config)",
            section="inventory",
        )
    if "BaseChangedError" in names:
        return Diagnosis(
            cause=f"the earlier complete feed this run builds on was replaced while it ran: {message}",
            fix="clear the whole DAG run (all its tasks) so it maps against the current base; nothing "
            "half-built was loaded",
            section="inventory",
        )
    if "DuckDBMemoryError" in names:  # the message names the caps in force and ends with " Fix: ..."
        cause, _, fix = str(error).partition(" Fix: ")
        return Diagnosis(cause=_clip(cause.rstrip(". ")), fix=_clip(fix), section="inventory")
    if "FeedNotCsvError" in names or "FeedFormatError" in names:
        # The feed itself is unusable (an HTML page, a binary file, another encoding, a repeated
        # column): the message says where and ends with " Fix: ...".
        cause, _, fix = str(error).partition(" Fix: ")
        return Diagnosis(
            cause=_clip(cause.rstrip(". ")),
            fix=_clip(fix or "follow the message above"),
            section="inventory",
        )
    if "OrdersNotSettledError" in names:
        return Diagnosis(
            cause=f"some orders could not be settled this run: {message}",
            fix="nothing to resend by hand: the next run asks US Direct about each of these POs before "
            "sending it again. If the same POs stay unsettled, check the US Direct API status",
            section="orders",
        )
    if "TemplateError" in names:
        return Diagnosis(
            cause="the mapping template cannot be used as written",
            fix=f"{message}. Check it with: python -m usdirect.mapping check FILE",
            section=op_section,
        )
    if "ConfigError" in names:
        return Diagnosis(
            cause=f"the usdirect config file is invalid: {message}",
            fix="correct the line named in include/usdirect.yaml (or the file USDIRECT_CONFIG names); "
            "the DAG files import again once it is valid",
            section="setup",
        )
    if "WarehouseConfigError" in names:
        return Diagnosis(
            cause=f"the warehouse connection {account.warehouse_conn_id} cannot be used: {message}",
            fix=f"correct connection {account.warehouse_conn_id} (Admin → Connections) as the message "
            "says, or point warehouse_conn_id in include/usdirect.yaml at another one; then clear the task",
            section="setup",
        )
    return _api(error, names, message, account, op_section)


def _api(error: BaseException, names: set[str], message: str, account: Account, section: str) -> Diagnosis:
    """The hooks' other typed errors, then anything unexpected."""
    _, conn_id = _connection_named(str(error), account.usdirect_conn_id)
    if "ValidationError" in names:
        return Diagnosis(
            cause=f"US Direct refused the request as invalid: {message}",
            fix="correct the fields listed (on the order at its source, or in the orders mapping "
            "template); the order is flagged and is sent again once corrected",
            section=section,
        )
    if "OutcomeUnknownError" in names:
        return Diagnosis(
            cause=f"the connection dropped before US Direct answered, so it is not known whether the "
            f"order was created: {message}",
            fix="nothing to do by hand: the next run looks the PO up before sending it again, so it is "
            "never created twice. If it keeps happening, check the US Direct API status",
            section=section,
        )
    if "RateLimitExhaustedError" in names:
        return Diagnosis(
            cause=f"US Direct kept answering 429 Too Many Requests after every retry: {message}",
            fix=f"lower rate_limit on connection {conn_id} or max_workers in include/usdirect.yaml, and "
            "check whether another system uses the same API Token; the next run catches up",
            section=section,
        )
    if "RateLimitBackendError" in names:
        return Diagnosis(
            cause=f"the Redis that paces every worker's API calls did not answer, so nothing was sent: "
            f"{message}",
            fix="start Redis or fix the connection named (rate_limit.redis_conn_id in "
            "include/usdirect.yaml); the task's retries resume once it answers",
            section="setup",
        )
    if "TransientExhaustedError" in names:
        return Diagnosis(
            cause=f"the API stayed unreachable or failing (timeouts, 5xx, cut-off answers): {message}",
            fix=f"usually temporary: clear the task later or let the next run catch up. If it persists, "
            f"check that this Airflow can reach the API Base URL of connection {conn_id}",
            section=section,
        )
    if "DuplicateError" in names:
        return Diagnosis(
            cause=f"US Direct already has this record: {message}",
            fix="nothing to resend; clear the task so the run links the existing record",
            section=section,
        )
    if "UsDirectError" in names:
        return Diagnosis(
            cause=message, fix="follow the message above; the guide section has more", section=section
        )
    return Diagnosis(
        cause=f"unexpected {type(error).__name__}: {message}",
        fix="open the log (link below); if the guide does not cover it, report it with the log",
        section=section,
    )


ATTENTION_FIXES: dict[str, tuple[str | None, str]] = {
    "orders_need_attention": (
        "orders",
        "open the orders listed (status needs_attention in fulfillment_requests, or flagged on the "
        "platform), correct the address, item or shipping code, and they are sent on the next run",
    ),
    "orders_awaiting_confirmation": (
        "orders",
        'verify one order: trigger usdirect_send_orders with {"po_numbers": ["<PO>"]} and check it at '
        "US Direct; then set operations.send_orders.automatic: true in include/usdirect.yaml, or send "
        'the rest with {"confirm": true}',
    ),
    "feed_guard_tripped": (
        "inventory",
        "check the feed with US Direct; if the catalog really shrank, trigger usdirect_get_inventory "
        'with the Param {"allow_shrink": true} (Trigger DAG w/ config)',
    ),
    "prices_held": (
        "inventory",
        "check the SKUs listed (table usdirect_held_changes: old and new prices, reason); if the new "
        'prices are right, trigger the DAG with {"accept_held": ["<sku>", ...]} or {"accept_all_held": '
        "true}; otherwise ask US Direct to fix the feed (the same new prices in confirm_after_feeds "
        "runs in a row are let through)",
    ),
    "invoices_overdue": (
        "invoices",
        "ask US Direct for the missing invoices of the POs listed; check the Reseller Token is entitled "
        "to them (Test on the connection)",
    ),
    "window_gap": (
        None,
        "nothing is lost: the run read the whole gap since the last window its targets took; find why "
        "runs stopped (DAG paused, scheduler down, runs failing) so it does not happen again, and raise "
        "max_gap_hours in include/usdirect.yaml if such gaps are expected",
    ),
    "reject_share_high": (
        None,
        "read the reasons in table usdirect_rejects for this run id and fix the mapping template or the "
        "source data",
    ),
}


def attention(reason: str, summary: str, operation: str) -> Diagnosis:
    """Diagnosis for a run that succeeded but needs a person (``reason`` is a key of ATTENTION_FIXES)."""
    try:
        section, fix = ATTENTION_FIXES[reason]
    except KeyError:
        raise ValueError(
            f"unknown attention reason {reason!r}; use one of {sorted(ATTENTION_FIXES)}"
        ) from None
    return Diagnosis(cause=summary, fix=fix, section=section or _section(operation))
