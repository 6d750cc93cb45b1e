"""Deterministic US Direct catalog: base values, next versions, dirty rows and the CSV feed.

Every per-SKU attribute is a hash of (seed, SKU index, column), not a draw from a shared random
stream, so SKU 100042 has the same title in a 2,000-row and a 2,000,000-row catalog and new SKUs
added by a later version never shift the values of existing ones. Everything is vectorised with
numpy/pyarrow so that a 2,000,000-row feed is generated and written in seconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

FEED_COLUMNS = (
    "sku",
    "title",
    "brand",
    "mpn",
    "upc",
    "cost",
    "msrp",
    "map",
    "quantity",
    "status",
    "weight_lb",
    "length_in",
    "width_in",
    "height_in",
    "category",
    "image_url",
    "updated_at",
)
STATUSES = ("active", "backorder", "discontinued")
ACTIVE, BACKORDER, DISCONTINUED = range(3)
DEFAULT_EPOCH = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
SKU_BASE = 100_000
QUANTITY_CAP = 100
DIRTY_KINDS = (
    "blank_sku",
    "duplicate_sku",
    "negative_quantity",
    "non_numeric_quantity",
    "unparseable_price",
    "wrong_column_count",
)

_BRANDS = np.array(
    ["GrillPro", "TrailMaster", "HomeCraft", "Nordlys", "Señor Chef", "Acme", "Bäckerei", "PeakLine"],
    dtype=object,
)
_BRAND_CODES = np.array(["GP", "TM", "HC", "NL", "SC", "AC", "BK", "PL"], dtype=object)
_ADJECTIVES = np.array(
    ["Stainless Steel", "Heavy-Duty", "Compact", "Deluxe", "Crème", "Ultra-Light", "Classic", "Pro"],
    dtype=object,
)
_NOUNS = np.array(
    [
        "Grill Brush",
        'Skillet 12"',
        "Tent, 2-Person",
        "Jalapeño Roaster",
        "Camp Chair",
        "Knife Set, 8 pc",
        'Cooler "Arctic"',
        "Headlamp",
        "Café Press",
        "Smoker Box",
    ],
    dtype=object,
)
_CATEGORIES = np.array(
    [
        "Outdoor > Grilling",
        "Outdoor > Camping",
        "Home > Kitchen",
        "Home > Coffee & Tea",
        "Tools > Hand Tools",
        "Sports > Fitness",
    ],
    dtype=object,
)
_M1, _M2, _GOLDEN = (
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
    np.uint64(0x9E3779B97F4A7C15),
)


def _hash(idx: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """splitmix64 of (seed, salt, index): a stable pseudo-random uint64 per SKU and column."""
    x = idx.astype(np.uint64) * _GOLDEN + np.uint64((seed * 1_000_003 + salt * 7919) % 2**64)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _unit(idx: np.ndarray, seed: int, salt: int) -> np.ndarray:
    return (_hash(idx, seed, salt) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _pick(words: np.ndarray, idx: np.ndarray, seed: int, salt: int) -> pa.Array:
    """A hash-chosen word per SKU (pyarrow take over a small vocabulary: no Python strings per row)."""
    choice = (_hash(idx, seed, salt) % np.uint64(len(words))).astype(np.int64)
    return pa.array(list(words), pa.string()).take(pa.array(choice))


def _money(cents: np.ndarray) -> pa.Array:
    """Integer cents → decimal strings ("12.49"); negative cents mean blank."""
    c = np.maximum(cents, 0)
    text = pc.binary_join_element_wise(
        pa.array(c // 100).cast(pa.string()),
        pc.utf8_lpad(pa.array(c % 100).cast(pa.string()), 2, "0"),
        ".",
    )
    return pc.if_else(pa.array(cents < 0), pa.scalar(None, pa.string()), text)


def _two_decimals(values: np.ndarray) -> pa.Array:
    return _money(np.round(values * 100).astype(np.int64))


def _iso(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds → "2026-11-20T08:15:00Z" (a cast plus replace: several times faster than strftime)."""
    text = pa.array(seconds.astype("datetime64[s]")).cast(pa.string())
    return pc.binary_join_element_wise(pc.replace_substring(text, " ", "T"), pa.scalar("Z"), "")


def _dollar_format(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


@dataclass(frozen=True)
class Shares:
    """Fractions of the present catalog touched by one next version."""

    price: float = 0.05
    quantity: float = 0.20
    new: float = 0.01
    removed: float = 0.01


class Catalog:
    """The supplier's catalog state: current values per SKU plus which SKUs are offered.

    Arrays are indexed by SKU index (SKU number = SKU_BASE + index); rows are never deleted,
    a removed SKU is only marked absent, so indices stay stable across versions.
    """

    def __init__(self, size: int, seed: int, epoch: datetime = DEFAULT_EPOCH) -> None:
        self.seed = seed
        self.version = 0
        self.epoch = int(epoch.timestamp())
        self.present = np.zeros(0, dtype=bool)
        self.cost = np.zeros(0, dtype=np.int64)
        self.msrp = np.zeros(0, dtype=np.int64)
        self.map = np.zeros(0, dtype=np.int64)
        self.quantity = np.zeros(0, dtype=np.int64)
        self.status = np.zeros(0, dtype=np.int8)
        self.updated_at = np.zeros(0, dtype=np.int64)
        self._grow(size)
        self._order: np.ndarray | None = None

    @property
    def total(self) -> int:
        return len(self.present)

    def _grow(self, count: int, at: int | None = None) -> None:
        """Append `count` new SKUs with their base values, updated at `at` (default: the 30 days
        before the epoch, spread)."""
        idx = np.arange(self.total, self.total + count, dtype=np.int64)
        seed = self.seed
        u_cost = _unit(idx, seed, 1)
        cost = np.round(np.exp(np.log(200) + u_cost**1.6 * (np.log(250_000) - np.log(200)))).astype(np.int64)
        msrp = np.round(cost * (1.5 + 0.7 * _unit(idx, seed, 2))).astype(np.int64)
        msrp[_unit(idx, seed, 3) < 0.10] = -1
        map_ = np.round(cost + (np.maximum(msrp, cost) - cost) * 0.8).astype(np.int64)
        map_[(_unit(idx, seed, 4) < 0.40) | (msrp < 0)] = -1
        u_status = _unit(idx, seed, 5)
        status = np.where(u_status < 0.85, ACTIVE, np.where(u_status < 0.93, BACKORDER, DISCONTINUED)).astype(
            np.int8
        )
        quantity = (_unit(idx, seed, 6) * 180).astype(np.int64)
        quantity[status != ACTIVE] = 0
        updated = self.epoch - (_unit(idx, seed, 7) * 30 * 86400).astype(np.int64)
        if at is not None:
            updated[:] = at
        self.present = np.concatenate([self.present, np.ones(count, dtype=bool)])
        self.cost = np.concatenate([self.cost, cost])
        self.msrp = np.concatenate([self.msrp, msrp])
        self.map = np.concatenate([self.map, map_])
        self.quantity = np.concatenate([self.quantity, quantity])
        self.status = np.concatenate([self.status, status])
        self.updated_at = np.concatenate([self.updated_at, updated])
        self._order = None

    def next_version(self, shares: Shares = Shares(), at: int | None = None) -> dict[str, int]:
        """Apply one version's changes at `at` (epoch seconds); returns how many rows each share hit."""
        at = max(int(at if at is not None else self.epoch + 3600), int(self.updated_at.max()) + 1)
        self.version += 1
        rng = np.random.default_rng([self.seed, self.version])
        offered = np.flatnonzero(self.present)

        def pick(share: float, pool: np.ndarray = offered) -> np.ndarray:
            k = min(len(pool), round(len(offered) * share))
            return rng.choice(pool, size=k, replace=False) if k else np.zeros(0, dtype=np.int64)

        price = pick(shares.price)
        factor = rng.uniform(0.85, 1.2, size=len(price))
        self.cost[price] = np.maximum(1, np.round(self.cost[price] * factor)).astype(np.int64)
        for column in (self.msrp, self.map):
            has = column[price] >= 0
            column[price[has]] = np.round(column[price[has]] * factor[has]).astype(np.int64)
        qty = pick(shares.quantity, pool=offered[self.status[offered] != DISCONTINUED])
        self._set_quantity(qty, rng.integers(0, 180, size=len(qty)))
        removed = pick(shares.removed)
        changed = np.union1d(price, qty)
        self.updated_at[changed] = at
        self.present[removed] = False
        new_count = round(len(offered) * shares.new)
        self._grow(new_count, at=at)
        self._order = None
        return {"price": len(price), "quantity": len(qty), "new": new_count, "removed": len(removed)}

    def corrupt_prices(self, count: int, new: int = 0, at: int | None = None) -> dict[str, list[str]]:
        """A version with broken prices (a price guard's test): per kind, `count` stocked SKUs get a
        cost a hundredth or ten times what it was, or a MAP above their MSRP; `new` SKUs arrive
        with a MAP above their MSRP. Returns the SKUs of each kind."""
        at = max(int(at if at is not None else self.epoch + 3600), int(self.updated_at.max()) + 1)
        self.version += 1
        rng = np.random.default_rng([self.seed, self.version, 7])
        pool = np.flatnonzero(self.present & (self.status != DISCONTINUED) & (self.msrp >= 0))
        picked = rng.choice(pool, size=min(len(pool), 3 * count), replace=False)
        drop, rise, above = picked[:count], picked[count : 2 * count], picked[2 * count :]
        self.cost[drop] = np.maximum(1, self.cost[drop] // 100)
        self.cost[rise] = self.cost[rise] * 10
        self.map[above] = self.msrp[above] + np.maximum(100, self.msrp[above] // 10)
        self.updated_at[picked] = at
        first_new = self.total
        self._grow(new, at=at)
        added = np.arange(first_new, self.total, dtype=np.int64)
        self.status[added], self.quantity[added] = ACTIVE, 10
        self.msrp[added] = self.cost[added] * 2
        self.map[added] = self.msrp[added] + 100
        self._order = None

        def skus(idx: np.ndarray) -> list[str]:
            return [str(SKU_BASE + int(i)) for i in sorted(idx)]

        return {
            "cost_drop": skus(drop),
            "cost_rise": skus(rise),
            "map_above_msrp": skus(above),
            "new": skus(added),
        }

    def _set_quantity(self, indices: np.ndarray, quantity: np.ndarray) -> None:
        """New stock levels: 0 means backorder, more means active (discontinued SKUs stay so)."""
        self.quantity[indices] = quantity
        self.status[indices] = np.where(quantity == 0, BACKORDER, ACTIVE)

    def touch(self, indices: np.ndarray, at: int) -> None:
        """Change the given SKUs at `at` (used to move rows while a client pages): the quantity of
        stocked SKUs changes, a discontinued SKU only gets a new updated_at."""
        stocked = indices[self.status[indices] != DISCONTINUED]
        self._set_quantity(stocked, (self.quantity[stocked] + 7) % 180)
        self.updated_at[indices] = max(at, int(self.updated_at.max()) + 1)
        self._order = None

    def index_of(self, sku: str) -> int | None:
        """Index of an offered SKU string, or None."""
        if not sku.isdigit():
            return None
        i = int(sku) - SKU_BASE
        return i if 0 <= i < self.total and self.present[i] else None

    def item(self, i: int) -> dict:
        """One SKU's current truth as JSON-ready values (the delta API's row shape plus static data)."""
        row = self.table(np.array([i], dtype=np.int64)).to_pylist()[0]
        row["quantity"] = int(self.quantity[i])
        row["cost"] = _money(self.cost[i : i + 1])[0].as_py()
        row["weight_lb"] = float(row["weight_lb"])
        return row

    def table(self, indices: np.ndarray | None = None) -> pa.Table:
        """Feed rows (all strings, the CSV's text) for the given indices, default all offered SKUs."""
        idx = np.flatnonzero(self.present) if indices is None else indices
        seed = self.seed
        brand = _pick(_BRANDS, idx, seed, 10)
        title = pc.binary_join_element_wise(
            brand, _pick(_ADJECTIVES, idx, seed, 11), _pick(_NOUNS, idx, seed, 12), " "
        )
        mpn = pc.binary_join_element_wise(
            _pick(_BRAND_CODES, idx, seed, 10),
            pa.array((_hash(idx, seed, 13) % np.uint64(100_000)).astype(np.int64)).cast(pa.string()),
            "-",
        )
        upc11 = (_hash(idx, seed, 14) % np.uint64(10**11)).astype(np.int64)
        weighted = sum(((upc11 // 10 ** (10 - p)) % 10) * (3 if p % 2 == 0 else 1) for p in range(11))
        check = (10 - weighted % 10) % 10
        upc = pc.utf8_lpad(pa.array(upc11 * 10 + check).cast(pa.string()), 12, "0")
        cost = _money(self.cost[idx])
        dollar = (_hash(idx, seed, 15) % np.uint64(40) == 0) & (self.cost[idx] >= 100_000)
        if dollar.any():
            styled = pa.array([_dollar_format(int(c)) for c in self.cost[idx][dollar]], pa.string())
            cost = pc.if_else(pa.array(dollar), styled.take(np.maximum(np.cumsum(dollar) - 1, 0)), cost)
        qty = self.quantity[idx]
        quantity = pc.if_else(
            pa.array(qty > QUANTITY_CAP), pa.scalar(f"{QUANTITY_CAP}+"), pa.array(qty).cast(pa.string())
        )
        dims_blank = pa.array(_unit(idx, seed, 17) < 0.15)
        dims = [
            pc.if_else(dims_blank, pa.scalar(None, pa.string()), _two_decimals(2 + 30 * _unit(idx, seed, s)))
            for s in (18, 19, 20)
        ]
        sku = pa.array(idx + SKU_BASE).cast(pa.string())
        image = pc.if_else(
            pa.array(_unit(idx, seed, 21) < 0.10),
            pa.scalar(None, pa.string()),
            pc.binary_join_element_wise("https://cdn.usdirect.example/img/", sku, ".jpg", ""),
        )
        category = _pick(_CATEGORIES, idx, seed, 22)
        columns = [
            sku,
            title,
            brand,
            mpn,
            upc,
            cost,
            _money(self.msrp[idx]),
            _money(self.map[idx]),
            quantity,
            pa.array(STATUSES, pa.string()).take(pa.array(self.status[idx])),
            _two_decimals(self.weights(idx)),
            *dims,
            category,
            image,
            _iso(self.updated_at[idx]),
        ]
        return pa.Table.from_arrays(columns, names=list(FEED_COLUMNS))

    def weights(self, indices: np.ndarray) -> np.ndarray:
        """Shipping weight in pounds as written in the feed (two decimals; some SKUs exceed 30 lb)."""
        return np.round(0.2 + 45 * _unit(indices, self.seed, 16) ** 3, 2)

    def changes_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted keyset keys, indices) over offered SKUs; key = updated_at << 24 | sku index."""
        if self._order is None:
            idx = np.flatnonzero(self.present)
            keys = (self.updated_at[idx] << 24) | idx
            order = np.argsort(keys, kind="stable")
            self._order = np.stack([keys[order], idx[order]])
        return self._order[0], self._order[1]


def dirty_rows(catalog: Catalog) -> list[tuple[str, list[str]]]:
    """Broken rows a faulty export would add: (kind, CSV fields), about 1 per 1,000 rows per kind."""
    offered = np.flatnonzero(catalog.present)
    per_kind = max(1, len(offered) // 1000)
    rng = np.random.default_rng([catalog.seed, catalog.version, 99])
    base = catalog.table(rng.choice(offered, size=per_kind * len(DIRTY_KINDS), replace=True)).to_pylist()
    rows: list[tuple[str, list[str]]] = []
    for n, values in enumerate(base):
        kind = DIRTY_KINDS[n % len(DIRTY_KINDS)]
        fields = ["" if values[c] is None else values[c] for c in FEED_COLUMNS]
        if kind != "duplicate_sku":
            fields[0] = f"9{n:08d}"  # a SKU outside the catalog, so only this row is affected
        if kind == "blank_sku":
            fields[0] = ""
        elif kind == "duplicate_sku":
            fields[8] = str((int(fields[8].rstrip("+")) + 3) % 50)
        elif kind == "negative_quantity":
            fields[8] = "-3"
        elif kind == "non_numeric_quantity":
            fields[8] = "lots"
        elif kind == "unparseable_price":
            fields[5] = "12.4O"
        else:
            fields = fields[:-3]
        rows.append((kind, fields))
    return rows


def _csv_line(fields: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue().encode()


def _chunks(table: pa.Table, size: int = 200_000) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)


def write_catalog_csv(
    catalog: Catalog, path: Path, dirty: bool = False, limit: int | None = None
) -> list[dict]:
    """Write the feed CSV of `catalog` (first `limit` rows if given); returns the dirty rows' lines.

    Dirty rows are spread evenly through the file; each returned entry names its 1-based line.
    """
    table = catalog.table()
    if limit is not None:
        table = table.slice(0, limit)
    extra = dirty_rows(catalog) if dirty and table.num_rows else []
    cuts = [table.num_rows * (k + 1) // (len(extra) + 1) for k in range(len(extra))]
    options = pacsv.WriteOptions(include_header=False)
    written: list[dict] = []
    line = 2
    with open(path, "wb") as out:
        out.write((",".join(FEED_COLUMNS) + "\n").encode())
        start = 0
        for cut, (kind, fields) in [*zip(cuts, extra, strict=True), (table.num_rows, ("", None))]:
            for chunk in _chunks(table.slice(start, cut - start)):
                buf = io.BytesIO()
                pacsv.write_csv(chunk, buf, options)
                out.write(buf.getvalue())
            line += cut - start
            start = cut
            if fields is not None:
                out.write(_csv_line(fields))
                written.append({"line": line, "kind": kind, "sku": fields[0]})
                line += 1
    return written


def write_feed_csv(
    path: str | Path,
    n: int,
    seed: int,
    version: int = 0,
    dirty: bool = False,
    epoch: datetime = DEFAULT_EPOCH,
) -> Path:
    """Write the feed of an n-SKU catalog at `version` (default shares per version) to `path`."""
    catalog = Catalog(n, seed, epoch)
    for v in range(version):
        catalog.next_version(at=int((epoch + timedelta(hours=v + 1)).timestamp()))
    path = Path(path)
    write_catalog_csv(catalog, path, dirty=dirty)
    return path
