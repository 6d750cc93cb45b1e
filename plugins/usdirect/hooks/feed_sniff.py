"""Is the downloaded feed a CSV at all? A login or error page served with 200, or a binary file.

A Feed URL whose key expired often answers 200 with the portal's HTML login page; a misconfigured
export may send a ZIP or a spreadsheet. Mapped as a CSV, either would be blamed on the mapping
template (``source column 'sku' is not in the feed``) and retried for nothing. The first bytes and the
Content-Type tell them apart before any mapping starts; both are permanent until a person acts.
"""

from __future__ import annotations

from pathlib import Path

from usdirect.domain.errors import PermanentError
from usdirect.hooks.errors import UsDirectError

SNIFF_BYTES = 8192
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")
# Files that are sometimes sent instead of a CSV: ZIP (also .xlsx), PDF, PNG, GIF, JPEG, old Excel.
_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (or an .xlsx workbook)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) or Office file",
}
# A CSV may hold a stray control byte in a value; a binary file is full of them.
_MAX_CONTROL_SHARE = 0.05
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


class FeedNotCsvError(UsDirectError, PermanentError):
    """The Feed URL answered 200 with something that is not a CSV (an HTML page, a binary file)."""


def check_head_content_type(content_type: str | None, *, where: str) -> None:
    """Test Connection's look at the Feed URL (a HEAD, no body): an HTML page is not the feed."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml"):
        raise FeedNotCsvError(
            f"the Feed URL answers with an HTML page (Content-Type {media}), not the CSV feed: usually "
            f"an expired feed key or the portal's login page. Copy the current Feed URL from the US "
            f"Direct portal into the Feed URL field of {where}"
        )


def check_feed_is_csv(path: Path, content_type: str | None, *, where: str) -> None:
    """Raise ``FeedNotCsvError`` when the file at ``path`` (already un-gzipped) is not a CSV."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        return  # an empty body is the feed guard's case ("the inventory feed is empty")
    media = (content_type or "").split(";")[0].strip().lower()
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    html_type = media in ("text/html", "application/xhtml+xml")
    if start.startswith(_HTML_STARTS) or (html_type and start[:1] == b"<"):
        raise FeedNotCsvError(
            f"the Feed URL returned an HTML page instead of the CSV feed (Content-Type "
            f"{media or 'not given'}, beginning {head[:40]!r}): usually an expired "
            f"feed key or the reseller portal's login page. Fix: open the US Direct portal, copy the "
            f"current Feed URL into the Feed URL field of {where}, then press Test on the connection"
        )
    kind = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)
    wide = head.startswith((b"\xff\xfe", b"\xfe\xff"))  # UTF-16/32 text: NUL in every character
    controls = 0 if wide else len(head) - len(head.translate(None, _CONTROL))
    if kind is not None or controls > max(16, _MAX_CONTROL_SHARE * len(head)):
        described = kind or f"binary data ({controls} control bytes in the first {len(head):,})"
        raise FeedNotCsvError(
            f"the Feed URL returned something that is not a CSV: {described}, Content-Type "
            f"{media or 'not given'}. Fix: check the Feed URL of {where} against the US Direct portal "
            "(it must be the inventory CSV export), or ask US Direct to fix the export"
        )
