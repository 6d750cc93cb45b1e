"""Paging helpers: keyset (cursor) paging with de-duplication, and page-number paging."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]


def iso_timestamp(value: datetime) -> str:
    """``value`` as the ISO 8601 UTC timestamp the APIs expect; naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "updated_since must be timezone-aware (e.g. the DAG run's data_interval_start); "
            "a naive datetime is ambiguous"
        )
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any) -> float | None:
    """Epoch seconds of an ISO timestamp (a float keeps the seen-map small), None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def iter_keyset(
    fetch: Callable[[str | None], tuple[list[Row], str | None]],
    key: str,
    updated_field: str = "updated_at",
) -> Iterator[list[Row]]:
    """Pages from a cursor-paged endpoint, each row delivered once unless a newer version comes.

    Keyset paging never skips a row changed while paging, but may show it twice. Within a page
    only the newest version of a key is kept; across pages a key already delivered is dropped
    unless the new copy is newer, so a consumer that applies pages in order (last write wins)
    ends with the newest version of every row. Empty pages are not yielded. Memory grows with
    the number of distinct keys (about 100 bytes each), which is why the full catalog comes
    from the feed and this endpoint serves deltas.
    """
    seen: dict[Any, float | None] = {}
    cursor: str | None = None
    while True:
        rows, cursor = fetch(cursor)
        page: dict[Any, Row] = {}
        for row in rows:
            row_key = row.get(key)
            stamp = _parse_ts(row.get(updated_field))
            if row_key in page:
                previous = _parse_ts(page[row_key].get(updated_field))
                if _newer(stamp, previous):
                    page[row_key] = row
                continue
            if row_key in seen and not _newer(stamp, seen[row_key]):
                continue
            page[row_key] = row
        for row_key, row in page.items():
            seen[row_key] = _parse_ts(row.get(updated_field))
        if page:
            yield list(page.values())
        if not cursor:
            return


def _newer(stamp: float | None, than: float | None) -> bool:
    if stamp is None:
        return False
    return than is None or stamp > than


def iter_numbered(fetch: Callable[[int], tuple[list[Row], int]]) -> Iterator[list[Row]]:
    """Pages 1..totalPages from a page-number endpoint (stops early on an empty page)."""
    page = 1
    while True:
        rows, total_pages = fetch(page)
        if not rows:
            return
        yield rows
        if page >= total_pages:
            return
        page += 1
