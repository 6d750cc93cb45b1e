"""Alerts for feeds that cannot be read: the cause and the fix come from the error, split apart, in the
inventory section of the guide (before, an HTML page or a repeated column read as an unexpected error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.catalog import Catalog, write_catalog_csv
from sandbox.feed_hostile import make_hostile
from usdirect.hooks.feed_sniff import FeedNotCsvError, check_feed_is_csv
from usdirect.mapping import load_template
from usdirect.mapping.errors import FeedFormatError
from usdirect.mapping.feed_reader import read_feed_batches
from usdirect.notifications.troubleshooting import diagnose
from usdirect.settings.config import Account

ACCOUNT = Account(id="east", usdirect_conn_id="usdirect_east", warehouse_conn_id="wh_east")
REPO = Path(__file__).resolve().parents[2]


def _error(tmp_path: Path, mode: str) -> Exception:
    path = tmp_path / "feed.csv"
    write_catalog_csv(Catalog(30, 3), path)
    media, _ = make_hostile(path, mode, 3)
    with pytest.raises((FeedNotCsvError, FeedFormatError)) as caught:
        check_feed_is_csv(path, media, where="the usdirect connection 'usdirect_east'")
        read_feed_batches(path, load_template(REPO / "include" / "mappings" / "inventory.yaml"))
    return caught.value


@pytest.mark.parametrize(
    ("mode", "cause", "fix"),
    [
        (
            "html",
            "the Feed URL returned an HTML page",
            "copy the current Feed URL into the Feed URL field of",
        ),
        ("binary", "the Feed URL returned something that is not a CSV", "check the Feed URL of"),
        ("cp1252", "is not valid utf-8 text: byte 0x", "set `encoding: cp1252` in"),
        ("duplicate_column", "lists a column more than once: 'quantity'", "ask US Direct to correct"),
    ],
)
def test_unreadable_feeds_are_diagnosed(tmp_path: Path, mode: str, cause: str, fix: str) -> None:
    found = diagnose(_error(tmp_path, mode), ACCOUNT, "get_inventory")
    assert cause in found.cause and "Fix:" not in found.cause
    assert fix in found.fix
    assert found.section == "inventory" and not found.cause.startswith("unexpected")
