"""When a SKU missing from the full feed is archived: after several good feeds, not on the first.

A feed served without Content-Length or gzip framing that is cut at a row boundary looks complete:
nothing on the wire tells a short body from a shorter catalog, and the shrink guard only stops
large cuts. So a missing SKU is first marked (the sequence number of the first good feed that
lacked it and when that feed was loaded), and archived only once it has been absent from
``after_feeds`` consecutive good feeds and, when ``after_hours`` is set, for that long. A SKU that
comes back before that is simply unmarked. Both targets (warehouse and platform ledger) apply the
same rule, so they archive the same SKUs in the same run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from usdirect.engine.base import sql_literal


@dataclass(frozen=True)
class Absence:
    """The rule for one full feed: its sequence number and the thresholds from the settings."""

    feed_seq: int
    after_feeds: int = 2
    after_hours: float | None = None

    def due_sql(self, first_missing_seq: str, missing_since: str, now: dt.datetime) -> str:
        """DuckDB condition: archive now (``first_missing_seq``/``missing_since`` may be NULL for
        SKUs this feed is the first to lack)."""
        seq = f"coalesce({first_missing_seq}, {int(self.feed_seq)})"
        condition = f"({int(self.feed_seq)} - {seq} + 1 >= {int(self.after_feeds)})"
        if self.after_hours:
            cutoff = now - dt.timedelta(hours=self.after_hours)
            since = f"coalesce({missing_since}, CAST({sql_literal(now.isoformat())} AS TIMESTAMPTZ))"
            condition += f" AND {since} <= CAST({sql_literal(cutoff.isoformat())} AS TIMESTAMPTZ)"
        return condition


def archive_at_once(feed_seq: int = 0) -> Absence:
    """A feed vouched for as complete (``allow_shrink``): every SKU it lacks is archived now."""
    return Absence(feed_seq=feed_seq, after_feeds=1, after_hours=None)
