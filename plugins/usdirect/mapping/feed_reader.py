"""Stream a CSV feed as all-text Arrow record batches, keeping malformed rows as rejects.

Every column is read as text so that the template, not the CSV reader, decides what "100+" or
"$1,299.00" mean. A row with the wrong number of values is skipped by Arrow's reader; the
handler records it (row number, key, text) so that no row is lost silently.

The bytes are read in the template's ``encoding`` (UTF-8 by default, byte-order mark allowed). A feed
that is not valid text in it, or whose header lists a column the template reads twice, fails with
``FeedFormatError`` naming the byte offset and line, or the columns, and the fix.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from usdirect.domain.read_ahead import read_ahead
from usdirect.mapping.errors import FeedFormatError
from usdirect.mapping.rejects import empty_rejects, make_rejects
from usdirect.mapping.template import Template

DEFAULT_BLOCK_SIZE = 16 << 20
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedBatch:
    """One batch of feed rows and their 1-based data row numbers (header excluded)."""

    batch: pa.RecordBatch
    row_numbers: pa.Array


class FeedReader:
    """Iterate `FeedBatch`es; `rejects` holds the malformed rows seen so far."""

    def __init__(
        self,
        path: str | Path,
        template: Template,
        block_size: int = DEFAULT_BLOCK_SIZE,
        read_ahead: bool = True,
    ) -> None:
        self.path = Path(path)
        self.template = template
        self.block_size = block_size
        self.read_ahead = read_ahead
        self.encoding = template.encoding
        self.columns = _header(self.path, template)
        _check_duplicate_columns(self.columns, template)
        template.check_columns(self.columns)
        self.rows_read = 0
        self._bad: list[tuple[int, int, int, str]] = []  # (data row, expected, actual, text)
        self._pending: list[int] = []

    def __iter__(self) -> Iterator[FeedBatch]:
        """Batches in file order; with ``read_ahead`` the next block is parsed on a thread while
        this one is mapped, about 0.15 s of 1.8 s for a million rows on two cores (numbering and the
        malformed-row handler then run on that thread only; off: one thread, to time reading and
        mapping apart)."""
        return read_ahead(self._batches()) if self.read_ahead else self._batches()

    def _batches(self) -> Iterator[FeedBatch]:
        try:
            yield from self._parsed()
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if isinstance(exc, pa.ArrowInvalid) and "invalid UTF8" not in str(exc):
                raise
            failure = _decode_failure(self.path, self.template)
            if failure is None:
                raise
            raise failure from exc  # the reader's own words stay as the cause, for the log

    def _parsed(self) -> Iterator[FeedBatch]:
        # Arrow reads UTF-8 itself (skipping a byte-order mark); other encodings are transcoded.
        arrow_encoding = "utf8" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding
        reader = pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(
                use_threads=False, block_size=self.block_size, encoding=arrow_encoding
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=self._on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(self.columns, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        start = 0
        for batch in reader:
            if batch.num_rows == 0:
                continue
            end = start + batch.num_rows
            skipped: list[int] = []
            for number in sorted(self._pending):
                if number > end:
                    break
                skipped.append(number)
                end += 1
            consumed = set(skipped)
            self._pending = [n for n in self._pending if n not in consumed]
            numbers = np.arange(start + 1, end + 1, dtype=np.int64)
            if skipped:
                numbers = np.setdiff1d(numbers, np.array(skipped, dtype=np.int64), assume_unique=True)
            start = end
            self.rows_read += batch.num_rows
            yield FeedBatch(batch, pa.array(numbers))

    def _on_invalid(self, row: pacsv.InvalidRow) -> str:
        # Arrow counts the header as row 1 when it can number rows (single-threaded reading).
        number = (row.number - 1) if row.number is not None else -1
        self._bad.append((number, row.expected_columns, row.actual_columns, row.text))
        if number > 0:
            self._pending.append(number)
        return "skip"

    @property
    def rejects(self) -> pa.Table:
        """Malformed rows as rejects (operation, row_number, key, reason, raw)."""
        if not self._bad:
            return empty_rejects()
        key_column = self.template.key_source()
        key_index = self.columns.index(key_column) if key_column in self.columns else None
        keys: list[str | None] = []
        raws: list[dict[str, object]] = []
        for _number, _expected, _actual, text in self._bad:
            values = next(csv.reader([text]), [])
            keys.append(values[key_index] if key_index is not None and key_index < len(values) else None)
            raws.append({"text": text})
        return make_rejects(
            self.template.operation,
            [b[0] for b in self._bad],
            keys,
            [
                f"malformed CSV row: {actual} values where the header has {expected} "
                "(often an unquoted comma or quote in the export)"
                for _n, expected, actual, _t in self._bad
            ],
            raws,
        )

    @property
    def malformed_rows(self) -> int:
        return len(self._bad)


def read_feed_batches(
    path: str | Path, template: Template, block_size: int = DEFAULT_BLOCK_SIZE, read_ahead: bool = True
) -> FeedReader:
    """Open a feed for batch-wise mapping; raises TemplateError if a template column is missing."""
    return FeedReader(path, template, block_size, read_ahead)


def _header(path: Path, template: Template) -> list[str]:
    encoding = "utf-8-sig" if template.encoding == "utf-8" else template.encoding
    try:
        with path.open(encoding=encoding, newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        failure = _decode_failure(path, template)
        if failure is None:
            raise
        raise failure from None
    if not header:
        raise ValueError(f"{path.name} is empty: the feed has no header row")
    return header


def _check_duplicate_columns(columns: list[str], template: Template) -> None:
    """A header naming a column twice is ambiguous only for the columns the template reads."""
    positions: dict[str, list[int]] = {}
    for number, name in enumerate(columns, start=1):
        positions.setdefault(name, []).append(number)
    repeated = {name: at for name, at in positions.items() if len(at) > 1}
    if not repeated:
        return
    listed = "; ".join(f"{name!r} at columns {', '.join(map(str, at))}" for name, at in repeated.items())
    read = [name for name in repeated if name in template.source_columns]
    if not read:
        log.warning("The feed's header repeats %s; the template reads none of them: ignored", listed)
        return
    reads = ", ".join(f"{name!r} (line {template.source_line(name)})" for name in read)
    raise FeedFormatError(
        f"the inventory feed's header lists a column more than once: {listed}. The template "
        f"{template.path} reads {reads}, and cannot tell which of the repeated columns is meant. "
        "Fix: ask US Direct to correct the export's header (often a renamed column that now clashes "
        "with an old one); if the right column has another name, point that field's `source:` at it"
    )


def _decode_failure(path: Path, template: Template) -> FeedFormatError | None:
    """Where the feed stops being valid text in the template's encoding (None if it never does)."""
    encoding = template.encoding
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = newlines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            pending = len(decoder.getstate()[0])  # bytes of a character the last chunk began
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                local = max(at - offset, 0)
                line = newlines + chunk.count(b"\n", 0, local) + 1
                near = chunk[max(local - 24, chunk.rfind(b"\n", 0, local) + 1, 0) : local + 1]
                return _decode_error(template, path, at, line, exc.object[exc.start], near)
            offset += len(chunk)
            newlines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return _decode_error(template, path, offset, newlines + 1, None, b"")
    return None


def _decode_error(
    template: Template, path: Path, at: int, line: int, byte: int | None, near: bytes
) -> FeedFormatError:
    what = f"byte 0x{byte:02X}" if byte is not None else "the last character (cut short)"
    where = f"{template.path}{_encoding_line(template)}"
    if template.encoding in ("utf-8", "utf-8-sig"):
        fix = (
            f"if US Direct exports it from Excel or Windows (é, ñ, ™ as single bytes), set "
            f"`encoding: cp1252` in {where}; otherwise ask US Direct for a UTF-8 export"
        )
    else:
        fix = (
            f"set `encoding:` in {where} to the feed's real encoding, or ask US Direct for a UTF-8 "
            "export and set it back to utf-8"
        )
    return FeedFormatError(
        f"the inventory feed ({path.name}) is not valid {template.encoding} text: {what} at byte offset "
        f"{at:,} (line {line} of the file, after {near!r}) cannot be read. Fix: {fix}"
    )


def _encoding_line(template: Template) -> str:
    """`` (line N)`` of the template's top-level ``encoding:`` key, when it has one."""
    try:
        lines = Path(template.path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    found = next((n for n, text in enumerate(lines, start=1) if text.startswith("encoding:")), None)
    return f" (line {found})" if found else ""
