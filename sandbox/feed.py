"""The full-feed file: written once per catalog state and mode, gzip variant compressed once on demand."""

from __future__ import annotations

import hashlib
import threading
import time
import zlib
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from sandbox.catalog import Catalog, write_catalog_csv
from sandbox.feed_hostile import HOSTILE_MODES, make_hostile

FEED_MODES = ("normal", "empty", "short", *HOSTILE_MODES)


@dataclass
class FeedFile:
    path: Path
    etag: str
    last_modified: float  # epoch seconds, whole
    dirty_rows: list[dict]
    media_type: str = "text/csv; charset=utf-8"
    hostile_rows: list[dict] | None = None  # rows a hostile mode changed (line, sku)
    _gz: Path | None = None

    def discard(self) -> None:
        """Delete the files (downloads still in progress keep reading the unlinked inode)."""
        for path in (self.path, self._gz):
            if path is not None:
                path.unlink(missing_ok=True)

    @property
    def etag_gz(self) -> str:
        return self.etag[:-1] + '-gz"'

    @property
    def http_date(self) -> str:
        return formatdate(self.last_modified, usegmt=True)


class FeedStore:
    """Current feed file for the catalog's version and the feed mode (normal / empty / short, or a
    hostile body: see ``feed_hostile``)."""

    def __init__(self, catalog: Catalog, data_dir: Path, dirty: bool) -> None:
        self.catalog, self.data_dir, self.dirty = catalog, data_dir, dirty
        self.mode, self.short_share = "normal", 0.5
        self._lock = threading.Lock()
        self._last_modified = 0.0
        self._generation = 0
        self.file = self._write()

    def set_mode(self, mode: str, share: float | None = None) -> None:
        if mode not in FEED_MODES:
            raise ValueError(f"mode must be one of {', '.join(FEED_MODES)}")
        self.mode = mode
        if share is not None:
            self.short_share = share
        self.refresh()

    def refresh(self) -> None:
        """Rewrite the feed after the catalog or the mode changed (open downloads keep the old file)."""
        old, self.file = self.file, self._write()
        old.discard()

    def _write(self) -> FeedFile:
        self._generation += 1
        path = self.data_dir / f"inventory-{self._generation}.csv"
        offered = int(self.catalog.present.sum())
        limit = {"empty": 0, "short": int(offered * self.short_share)}.get(self.mode)
        dirty_rows = write_catalog_csv(
            self.catalog, path, dirty=self.dirty and self.mode == "normal", limit=limit
        )
        media_type, hostile_rows = "text/csv; charset=utf-8", None
        if self.mode in HOSTILE_MODES:
            media_type, hostile_rows = make_hostile(path, self.mode, self.catalog.seed)
        identity = (
            f"{self.catalog.seed}:{self.catalog.version}:{self.mode}:{limit}:{offered}:{self._generation}"
        )
        # Last-Modified strictly increases with each new content, even within one wall-clock second.
        self._last_modified = max(float(int(time.time())), self._last_modified + 1)
        etag = '"' + hashlib.sha256(identity.encode()).hexdigest()[:20] + '"'
        return FeedFile(path, etag, self._last_modified, dirty_rows, media_type, hostile_rows)

    def gzip_path(self, feed: FeedFile) -> Path:
        """The pre-compressed variant of `feed`, compressed on first use (fast, level 1)."""
        with self._lock:
            if feed._gz is None:
                gz = feed.path.with_suffix(".csv.gz")
                packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
                with open(feed.path, "rb") as src, open(gz, "wb") as dst:
                    while chunk := src.read(8 << 20):
                        dst.write(packer.compress(chunk))
                    dst.write(packer.flush())
                feed._gz = gz
            return feed._gz
