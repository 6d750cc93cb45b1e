"""Reminders that every scheduled run would repeat, let through at most once per period."""

from __future__ import annotations

import datetime as dt

from usdirect.targets.warehouse.sql import Warehouse

NOTICES = "usdirect_order_notices"


def claim_notice(wh: Warehouse, account: str, reason: str, every: dt.timedelta) -> bool:
    """True for the first caller in each ``every`` period per account and reason (atomic), so
    a reminder repeated by every scheduled run reaches people at most that often."""
    p = wh.placeholder
    now = dt.datetime.now(dt.UTC)
    with wh.connect() as conn:
        wh.execute(
            conn,
            f"CREATE TABLE IF NOT EXISTS {wh.table(NOTICES)} (account TEXT NOT NULL, reason TEXT NOT NULL, "
            "last_sent_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (account, reason))",
        )
        rows = wh.fetchall(
            conn,
            f"INSERT INTO {wh.table(NOTICES)} AS n (account, reason, last_sent_at) "
            f"VALUES ({p}, {p}, CAST({p} AS TIMESTAMPTZ)) ON CONFLICT (account, reason) DO UPDATE "
            f"SET last_sent_at = EXCLUDED.last_sent_at WHERE n.last_sent_at <= CAST({p} AS TIMESTAMPTZ) "
            "RETURNING account",
            (account, reason, now, now - every),
        )
    return bool(rows)
