"""Vectorised column kernels: text transforms, value maps and casts over Arrow arrays.

Each kernel takes and returns whole arrays; nothing here loops over rows, except the last-resort
element-wise cast that only runs on a batch where a vectorised cast failed after the regular
expressions had filtered the obvious bad values (for example a calendar date like 2026-02-30).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TRUE_WORDS = pa.array(["true", "t", "yes", "y", "1"])
FALSE_WORDS = pa.array(["false", "f", "no", "n", "0"])
_INT_RE = r"^-?[0-9]{1,18}$"
_DECIMAL_RE = r"^[+-]?([0-9]{1,27}(\.[0-9]{0,10})?|\.[0-9]{1,10})$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TS_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
)
_ZONE_RE = r"(Z|z|[+-][0-9]{2}:?[0-9]{2}|[+-][0-9]{2})$"
WIDE_DECIMAL = pa.decimal128(38, 10)


@dataclass(frozen=True)
class Failure:
    """Rows (mask) that cannot be mapped and why (one text, or one text per row)."""

    mask: pa.BooleanArray
    reason: pa.Array | str


# C0 control characters other than tab, line feed and carriage return: Postgres cannot store NUL
# at all (COPY fails the whole load), and the others are export debris that no field means to hold.
CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


def strip_control(arr: pa.Array) -> pa.Array:
    """Remove ``CONTROL_CHARS`` from text, so a stray NUL never fails a load or reaches the platform.

    Costs one look at the bytes per column (about 1 ms per million values); only a column that holds
    a byte below 0x20 (a tab or newline counts too) is rewritten.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    data = arr.buffers()[2] if pa.types.is_string(arr.type) else None
    if data is None or data.size == 0:
        return arr
    if np.frombuffer(data, dtype=np.uint8).min() >= 0x20:
        return arr
    return pc.replace_substring_regex(arr, CONTROL_CHARS, "")


def strip(arr: pa.Array) -> pa.Array:
    """``utf8_trim_whitespace``, skipped when no value can start or end with whitespace.

    Every character it removes (Python's ``str.isspace``) is ASCII below 0x21 or not ASCII at all,
    so a value whose first and last bytes are printable ASCII stays as it is. Looking at those two
    bytes per value costs a few percent of the trim, which rewrites every value of every column (a
    third of the mapping time of a clean feed).
    """
    if not pa.types.is_string(arr.type) or isinstance(arr, pa.ChunkedArray) or len(arr) == 0:
        return pc.utf8_trim_whitespace(arr)
    _validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    starts, ends = offsets[:-1], offsets[1:]
    filled = starts < ends  # empty values (and nulls) have nothing to trim
    if not filled.any():
        return arr
    data = np.frombuffer(data_buf, dtype=np.uint8)
    first, last = data[starts[filled]], data[ends[filled] - 1]
    if ((first < 0x21) | (first > 0x7F) | (last < 0x21) | (last > 0x7F)).any():
        return pc.utf8_trim_whitespace(arr)
    return arr


def null_like(arr: pa.Array) -> pa.Scalar:
    return pa.scalar(None, type=arr.type)


def blank_to_null(arr: pa.Array) -> pa.Array:
    """Empty text means 'no value' in a feed; make it null so defaults and required checks apply."""
    blank = pc.equal(arr, "")
    if not pc.any(blank).as_py():
        return arr
    return pc.if_else(blank, null_like(arr), arr)


def join_skipping_nulls(arrays: list[pa.Array], separator: str) -> pa.Array:
    """Join texts with `separator`, leaving out null ones (an all-null row stays null).

    Arrow's own null_handling="skip" drops all-null rows from the result, so it is built pairwise.
    """
    result = arrays[0]
    for arr in arrays[1:]:
        joined = pc.binary_join_element_wise(result, arr, separator, null_handling="emit_null")
        result = pc.coalesce(joined, result, arr)
    return result


def format_columns(parts: list[str | pa.Array]) -> pa.Array:
    """Concatenate literal texts and columns (nulls read as empty); null when every column is null."""
    columns = [p for p in parts if isinstance(p, pa.Array)]
    joined = pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")
    all_null = pc.is_null(columns[0])
    for col in columns[1:]:
        all_null = pc.and_(all_null, pc.is_null(col))
    return pc.if_else(all_null, null_like(joined), joined)


def add_prefix(arr: pa.Array, text: str) -> pa.Array:
    """Prefix non-empty values (an empty SKU must stay empty, not become "USD-")."""
    return _keep_empty(arr, pc.binary_join_element_wise(text, arr, ""))


def add_suffix(arr: pa.Array, text: str) -> pa.Array:
    return _keep_empty(arr, pc.binary_join_element_wise(arr, text, ""))


def _keep_empty(arr: pa.Array, changed: pa.Array) -> pa.Array:
    empty = pc.equal(arr, "")
    if not pc.any(empty).as_py():
        return changed
    return pc.if_else(empty, arr, changed)


def remove_prefix(arr: pa.Array, prefix: str) -> pa.Array:
    has = pc.starts_with(arr, prefix)
    return pc.if_else(has, pc.utf8_slice_codeunits(arr, len(prefix)), arr)


def remove_suffix(arr: pa.Array, suffix: str) -> pa.Array:
    has = pc.ends_with(arr, suffix)
    if not pc.any(has).as_py():
        return arr  # the common case (no capped quantity in the batch): nothing to rewrite
    return pc.if_else(has, pc.utf8_slice_codeunits(arr, 0, -len(suffix)), arr)


def parse_currency(arr: pa.Array) -> pa.Array:
    """'$1,299.00' → '1299.00' (also '$ 5'); only rewrites batches that contain a '$' or ','."""
    changed = False
    for symbol in ("$", ","):
        if _may_contain(arr, symbol) and pc.any(pc.match_substring(arr, symbol)).as_py():
            arr = pc.replace_substring(arr, symbol, "")
            changed = True
    return strip(arr) if changed else arr


def _may_contain(arr: pa.Array, symbol: str) -> bool:
    """False when no value of a text array holds the ASCII ``symbol`` (one byte scan of the values'
    bytes, several times faster than a substring search); True when one may."""
    if not pa.types.is_string(arr.type) or isinstance(arr, pa.ChunkedArray) or len(arr) == 0:
        return True
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return False
    values = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return bool((values == ord(symbol)).any())


def uncap(arr: pa.Array) -> pa.Array:
    """'100+' (a capped quantity) → '100'."""
    return remove_suffix(arr, "+")


@dataclass(frozen=True)
class ValueMap:
    """A compiled value map: keys and values as Arrow arrays for index_in/take."""

    name: str
    file: str
    keys: pa.Array
    values: pa.Array
    ignore_case: bool
    on_missing: str
    default: str | None
    reason: str | None

    def apply(self, arr: pa.Array, field: str) -> tuple[pa.Array, Failure | None]:
        arr = blank_to_null(arr)  # an empty value is "no value", not an unknown key
        probe = pc.utf8_lower(arr) if self.ignore_case else arr
        index = pc.index_in(probe, value_set=self.keys)
        out = pc.take(self.values, index)
        missing = pc.and_(pc.is_null(index), pc.is_valid(arr))
        if not pc.any(missing).as_py():
            return out, None
        if self.on_missing == "keep":
            return pc.if_else(missing, arr, out), None
        if self.on_missing == "default":
            return pc.if_else(missing, pa.scalar(self.default, pa.string()), out), None
        if self.on_missing == "null":
            return out, None
        template = self.reason or f"{field}: unknown value {{value}}"
        head, _, tail = template.partition("{value}")
        hint = f": add it to the {self.name} value map in {self.file}"
        reason = pc.binary_join_element_wise(head, arr, tail + hint, "")
        return out, Failure(missing, reason)


def _vectorised_or_elementwise(
    arr: pa.Array, convert: Callable[[pa.Array], pa.Array], dtype: pa.DataType
) -> tuple[pa.Array, pa.BooleanArray]:
    """Run `convert`; if it raises for the batch, convert value by value to find the bad ones."""
    try:
        out = convert(arr)
        return out, pc.and_(pc.is_null(out), pc.is_valid(arr))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values: list[object] = []
    bad: list[bool] = []
    for item in arr.to_pylist():
        if item is None:
            values.append(None)
            bad.append(False)
            continue
        try:
            values.append(convert(pa.array([item], pa.string()))[0].as_py())
            bad.append(values[-1] is None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values.append(None)
            bad.append(True)
    return pa.array(values, dtype), pa.array(bad, pa.bool_())


def _filter_regex(arr: pa.Array, pattern: str) -> pa.Array:
    ok = pc.match_substring_regex(arr, pattern)
    return pc.if_else(ok, arr, null_like(arr))


def cast_text(arr: pa.Array, dtype: pa.DataType) -> tuple[pa.Array, pa.BooleanArray | None]:
    """Read text as `dtype`. Returns the typed array and the mask of values that could not be read.

    Fast path: one Arrow cast. Only a batch containing a bad value takes the slower filtered path.
    """
    if pa.types.is_string(dtype):
        return arr, None
    if pa.types.is_boolean(dtype):
        return _cast_bool(arr)
    try:
        return _fast_cast(arr, dtype), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if pa.types.is_integer(dtype):
        convert = partial(_convert_int, dtype=dtype)
    elif pa.types.is_decimal(dtype):
        convert = partial(_convert_decimal, dtype=dtype)
    elif pa.types.is_date(dtype):
        convert = partial(_convert_date, dtype=dtype)
    else:
        convert = partial(_convert_timestamp, dtype=dtype)
    return _vectorised_or_elementwise(arr, convert, dtype)


def _convert_int(arr: pa.Array, dtype: pa.DataType) -> pa.Array:
    return pc.cast(_filter_regex(arr, _INT_RE), dtype)


def _convert_decimal(arr: pa.Array, dtype: pa.Decimal128Type) -> pa.Array:
    cleaned = _filter_regex(arr, _DECIMAL_RE)
    try:
        return pc.cast(cleaned, dtype)  # the bad values were text like "12.4O": now null
    except pa.ArrowInvalid:
        return _cast_decimal(cleaned, dtype)  # more decimals than the scale, or too large


def _convert_date(arr: pa.Array, dtype: pa.DataType) -> pa.Array:
    return pc.cast(_filter_regex(_date_part(arr), _DATE_RE), dtype)


def _convert_timestamp(arr: pa.Array, dtype: pa.DataType) -> pa.Array:
    return pc.cast(_filter_regex(_assume_utc(arr), _TS_RE), dtype)


def _fast_cast(arr: pa.Array, dtype: pa.DataType) -> pa.Array:
    if pa.types.is_date(dtype):
        return pc.cast(_date_part(arr), dtype)
    if pa.types.is_timestamp(dtype):
        try:
            return pc.cast(arr, dtype)
        except pa.ArrowInvalid:
            return pc.cast(_assume_utc(arr), dtype)
    return pc.cast(arr, dtype)


def _cast_decimal(arr: pa.Array, dtype: pa.Decimal128Type) -> pa.Array:
    """Read up to 10 decimals, round to the target scale, null what does not fit the precision."""
    wide = pc.round(pc.cast(arr, WIDE_DECIMAL), ndigits=dtype.scale, round_mode="half_towards_infinity")
    limit = pa.scalar(Decimal(10) ** (dtype.precision - dtype.scale), WIDE_DECIMAL)
    fits = pc.less(pc.abs(wide), limit)
    return pc.cast(pc.if_else(fits, wide, null_like(wide)), dtype)


def _date_part(arr: pa.Array) -> pa.Array:
    """'2026-11-20T08:00:00Z' → '2026-11-20': a timestamp's own calendar date (no zone shift)."""
    long = pc.greater(pc.utf8_length(arr), 10)
    if not pc.any(long).as_py():
        return arr
    return pc.if_else(long, pc.utf8_slice_codeunits(arr, 0, 10), arr)


def _assume_utc(arr: pa.Array) -> pa.Array:
    """Timestamps without an offset are read as UTC."""
    zoned = pc.match_substring_regex(arr, _ZONE_RE)
    return pc.if_else(zoned, arr, pc.binary_join_element_wise(arr, "Z", ""))


def _cast_bool(arr: pa.Array) -> tuple[pa.Array, pa.BooleanArray]:
    words = pc.utf8_lower(arr)
    is_true = pc.is_in(words, value_set=TRUE_WORDS)
    is_false = pc.is_in(words, value_set=FALSE_WORDS)
    out = pc.if_else(is_true, True, pc.if_else(is_false, False, pa.scalar(None, pa.bool_())))
    bad = pc.and_(pc.is_valid(arr), pc.invert(pc.or_(is_true, is_false)))
    return out, bad


def scalar_for(value: object, dtype: pa.DataType) -> pa.Scalar:
    """A template literal (number, text, date) as a scalar of `dtype`; ValueError if it does not fit."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    out, bad = cast_text(pa.array([text], pa.string()), dtype)
    if (bad is not None and bad[0].as_py()) or not out[0].is_valid:
        raise ValueError(f"{value!r} is not a valid {dtype}")
    return out[0]
