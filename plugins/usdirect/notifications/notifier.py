"""Alerts: a failed task, or a successful run that needs a person, sent through Airflow's notifiers.

The channels (email via SMTP, Slack webhook, generic HTTP webhook) come from the ``alerts`` section of
``include/usdirect.yaml`` and name Airflow connections, so addresses and tokens stay in Airflow.
Every alert names the DAG, task, run and try, says the cause in plain words, gives the fix from the
troubleshooting guide and links to the log. Text is redacted against the account's connection
secrets before it leaves, because error text from libraries can quote a URL with its key.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import BaseNotifier

from usdirect.domain.redaction import redact
from usdirect.notifications.troubleshooting import Diagnosis, attention, diagnose
from usdirect.settings.config import (
    Account,
    AlertChannel,
    Config,
    ConfigError,
    EmailChannel,
    HttpChannel,
    SlackChannel,
    load_config,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One alert, rendered per channel by ``text``, ``html`` and ``payload``."""

    kind: str  # "failure" | "needs_attention"
    reason: str  # "task_failed" or an attention reason
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    account: str
    operation: str
    cause: str
    fix: str
    guide: str
    log_url: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        what = "task failed" if self.kind == "failure" else "run needs attention"
        return f"US Direct {what}: {self.dag_id}.{self.task_id} (account {self.account})"

    def text(self) -> str:
        lines = [
            self.title,
            f"Run: {self.run_id} (try {self.try_number})",
            f"Cause: {self.cause}",
            f"Fix: {self.fix}",
        ]
        lines += [f"{k}: {v}" for k, v in self.details.items()]
        lines += [f"Guide: {self.guide}", f"Log: {self.log_url}"]
        return "\n".join(lines)

    def html(self) -> str:
        rows = self.text().splitlines()
        body = "".join(f"<p>{html.escape(r)}</p>" for r in rows[1:-1])
        link = html.escape(self.log_url, quote=True)
        return f'<h3>{html.escape(rows[0])}</h3>{body}<p>Log: <a href="{link}">{link}</a></p>'

    def payload(self) -> dict[str, Any]:
        return {**asdict(self), "title": self.title, "text": self.text()}


def _context_ti(context: Mapping[str, Any]) -> Any:
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        raise ValueError("the Airflow context has no task instance: alerts are sent from tasks only")
    return ti


def _log_url(ti: Any) -> str:
    try:
        return str(ti.log_url)
    except Exception:  # an unconfigured base_url must not stop the alert
        return "(log link unavailable: set [api] base_url)"


def account_secrets(account: Account) -> list[str]:
    """Every secret value on the account's connections, to redact alert text against."""
    from airflow.sdk import BaseHook

    secrets: list[str] = []
    for conn_id in (account.usdirect_conn_id, account.flxpoint_conn_id, account.warehouse_conn_id):
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:  # a missing connection has no secrets to leak
            log.debug("No secrets to redact from connection %s: %s", conn_id, type(exc).__name__)
            continue
        secrets.append(conn.password or "")
        secrets += [v for v in (conn.extra_dejson or {}).values() if isinstance(v, str)]
    return secrets


def build_alert(
    context: Mapping[str, Any],
    account: Account,
    operation: str,
    diagnosis: Diagnosis,
    *,
    kind: str,
    reason: str,
    details: Mapping[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> Alert:
    """The alert for the task instance in ``context``, redacted against ``secrets``."""
    ti = _context_ti(context)
    secrets = list(secrets)
    return Alert(
        kind=kind,
        reason=reason,
        dag_id=str(ti.dag_id),
        task_id=str(ti.task_id),
        run_id=str(ti.run_id),
        try_number=int(getattr(ti, "try_number", 0) or 0),
        account=account.id,
        operation=operation,
        cause=redact(diagnosis.cause, secrets),
        fix=redact(diagnosis.fix, secrets),
        guide=diagnosis.guide,
        log_url=_log_url(ti),
        details={k: redact(str(v), secrets) for k, v in (details or {}).items()},
    )


def _notifier(channel: AlertChannel, alert: Alert) -> BaseNotifier:
    """The provider's notifier for one channel (imported here: DAG parsing never needs them)."""
    if isinstance(channel, HttpChannel):
        from airflow.providers.http.notifications.http import HttpNotifier

        return HttpNotifier(
            http_conn_id=channel.conn_id,
            endpoint=channel.endpoint,
            json=alert.payload(),
            headers={"Content-Type": "application/json"},
        )
    if isinstance(channel, SlackChannel):
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(slack_webhook_conn_id=channel.conn_id, text=alert.text())
    if isinstance(channel, EmailChannel):
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            to=list(channel.to),
            from_email=channel.from_email,
            subject=alert.title,
            html_content=alert.html(),
            smtp_conn_id=channel.conn_id,
        )
    raise TypeError(f"unknown alert channel {channel!r}")


def send_alert(alert: Alert, channels: Iterable[AlertChannel], context: Context) -> int:
    """Send through every channel; returns how many accepted it. One failing channel never stops the rest.

    ``notify`` is called directly (not ``__call__``) so that alert text is never rendered as Jinja.
    """
    sent = 0
    channels = list(channels)
    for channel in channels:
        try:
            _notifier(channel, alert).notify(context)
            sent += 1
        except Exception as exc:
            log.error(
                "Alert channel %s (connection %s) failed: %s: %s",
                channel.type,
                channel.conn_id,
                type(exc).__name__,
                redact(str(exc)),
            )
    if channels and not sent:
        log.error("No alert channel accepted the alert; here it is so it is not lost:\n%s", alert.text())
    return sent


class UsDirectFailureNotifier(BaseNotifier):
    """``on_failure_callback`` for every task of an operation's DAG (set by the DAG factory)."""

    def __init__(self, account_id: str, operation: str, channels: Iterable[AlertChannel]) -> None:
        super().__init__()
        self.account_id = account_id
        self.operation = operation
        self.channels = tuple(channels)

    def notify(self, context: Context) -> None:
        account = self._account()
        error = context.get("exception")
        diagnosis = diagnose(error if isinstance(error, BaseException) else None, account, self.operation)
        alert = build_alert(
            context,
            account,
            self.operation,
            diagnosis,
            kind="failure",
            reason="task_failed",
            secrets=account_secrets(account),
        )
        send_alert(alert, self.channels, context)

    def _account(self) -> Account:
        """The account as the settings describe it now; when the settings file itself is what broke
        the task, the alert still goes out (channels were fixed at parse), with default conn ids."""
        try:
            cfg = load_config()
        except ConfigError as exc:
            log.warning("Alerting with default connection ids: %s", exc)
            return Account(id=self.account_id)
        return next((a for a in cfg.accounts if a.id == self.account_id), Account(id=self.account_id))


class AlertingRun(Protocol):
    """What an alert needs from the run it reports on (the operators' ``OperationRun`` has it)."""

    operation: str
    cfg: Config
    account: Account


def alert_needs_attention(
    run: AlertingRun, reason: str, summary: str, details: Mapping[str, Any] | None = None
) -> int:
    """Alert from a task that succeeded but left something for a person; returns channels reached.

    ``reason`` is one of ``orders_need_attention``, ``orders_awaiting_confirmation``,
    ``feed_guard_tripped``, ``prices_held``, ``invoices_overdue``, ``reject_share_high``,
    ``window_gap``; ``summary`` says what in plain words (counts, not secrets), ``details`` adds a
    few key/value lines (e.g. the first POs). Call it inside ``operation_run``.
    """
    from airflow.sdk import get_current_context

    diagnosis = attention(reason, summary, run.operation)
    alerts = run.cfg.alerts
    context = get_current_context()
    alert = build_alert(
        context,
        run.account,
        run.operation,
        diagnosis,
        kind="needs_attention",
        reason=reason,
        details=details,
        secrets=account_secrets(run.account),
    )
    if not alerts.needs_attention or not alerts.channels:
        log.warning("Needs attention (alerts for it are off in the config):\n%s", alert.text())
        return 0
    log.warning("Needs attention, sending an alert:\n%s", alert.text())
    return send_alert(alert, alerts.channels, context)
