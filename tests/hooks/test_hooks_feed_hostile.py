"""Feed bodies that are not a CSV (a login page served with 200, a binary file) over real HTTP from
the sandbox: refused at once, for good, with the cause named; CSVs with hostile values still pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from usdirect.domain.errors import PermanentError
from usdirect.hooks.feed_sniff import FeedNotCsvError, check_feed_is_csv
from usdirect.hooks.usdirect import UsDirectHook


def _feed_gets(info) -> int:
    stats = info.stats()["requests"]
    return sum(n for k, v in stats.items() if k.startswith("GET /feeds/") for s, n in v.items() if s == "200")


def test_html_login_page_is_named_and_not_retried(sandbox_factory, use_sandbox, tmp_path: Path) -> None:
    """The sandbox sends the page gzipped, as the feed: it is recognised after decompression."""
    info = sandbox_factory(catalog_size=50)
    use_sandbox(info)
    info.set_feed_mode("html")
    dest = tmp_path / "feed.csv"
    with pytest.raises(FeedNotCsvError) as caught:
        UsDirectHook().download_feed(dest)
    message = str(caught.value)
    assert isinstance(caught.value, PermanentError)
    assert "the Feed URL returned an HTML page" in message and "text/html" in message
    assert (
        "expired feed key" in message
        and "Feed URL field of the usdirect connection 'usdirect_default'" in message
    )
    assert "key=" not in message and info.feed_url.split("key=")[1] not in message
    assert _feed_gets(info) == 1  # refused at once: no retry of a page that will not change
    assert not dest.exists() and list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_binary_body_is_not_a_csv(sandbox_factory, use_sandbox, tmp_path: Path) -> None:
    info = sandbox_factory(catalog_size=50)
    use_sandbox(info)
    info.set_feed_mode("binary")
    with pytest.raises(
        FeedNotCsvError, match="the Feed URL returned something that is not a CSV: binary data"
    ):
        UsDirectHook().download_feed(tmp_path / "feed.csv")
    assert _feed_gets(info) == 1
    assert not (tmp_path / "feed.csv").exists()


@pytest.mark.parametrize("mode", ["control_chars", "cp1252", "duplicate_column"])
def test_hostile_csvs_still_download(sandbox_factory, use_sandbox, tmp_path: Path, mode: str) -> None:
    """A stray NUL in a value, a Windows-1252 file or a doubled column is still a CSV: the mapping
    deals with those, the download must not refuse them."""
    info = sandbox_factory(catalog_size=120)
    use_sandbox(info)
    info.set_feed_mode(mode)
    download = UsDirectHook().download_feed(tmp_path / "feed.csv")
    body = download.path.read_bytes()
    assert body.startswith(b"sku,title,")
    if mode == "control_chars":
        assert b"\x00" in body and len(info.catalog_truth()["hostile_rows"]) == 3
    if mode == "cp1252":
        assert b"Se\xf1or Chef" in body


def test_sniff_edges(tmp_path: Path) -> None:
    """Known binary formats by their magic; UTF-16 text and a CSV with a BOM are not binary."""
    cases = {
        b"PK\x03\x04" + b"x" * 100: "a ZIP archive",
        b"%PDF-1.7\n" + b"x" * 100: "a PDF document",
    }
    for body, named in cases.items():
        path = tmp_path / "f"
        path.write_bytes(body)
        with pytest.raises(FeedNotCsvError, match=named):
            check_feed_is_csv(path, "application/octet-stream", where="the usdirect connection 'x'")
    for body in ("sku,title\n1,a\n".encode("utf-16"), b"\xef\xbb\xbfsku,title\n1,\x00a\n"):
        path.write_bytes(body)
        check_feed_is_csv(path, "text/csv", where="the usdirect connection 'x'")
    # A CSV mislabelled as text/html is still a CSV: only a body that starts like markup is a page.
    path.write_bytes(b"sku,title\n1,a\n")
    check_feed_is_csv(path, "text/html", where="the usdirect connection 'x'")


def test_test_connection_names_a_feed_url_that_answers_with_a_page(sandbox_factory, use_sandbox) -> None:
    """Test Connection said "Feed URL OK" for a login page; the other two credentials still pass."""
    info = sandbox_factory(catalog_size=50)
    use_sandbox(info)
    info.set_feed_mode("html")
    ok, message = UsDirectHook().test_connection()
    lines = message.splitlines()
    assert ok is False
    assert lines[0].startswith("API Token OK") and lines[2].startswith("Reseller Token OK")
    assert lines[1].startswith("Feed URL could not be checked: the Feed URL answers with an HTML page")
    assert "Feed URL field of the usdirect connection 'usdirect_default'" in lines[1]
    info.set_feed_mode("normal")
    assert UsDirectHook().test_connection()[0] is True
