"""`make bench`: run every benchmark, print a table, write benchmarks/results/latest.json.

Each benchmark module exposes ``run(...) -> dict`` whose ``results`` is a list of flat records
(name, rows, seconds, rows_per_s, peak_rss_mb, ...). Figures from different machines are not
comparable; the JSON carries the machine so that a later run can be compared like for like.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.machine import describe

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = {
    "mapping": ("benchmarks.bench_mapping", {"rows": 1_000_000}),
    "inventory": ("benchmarks.bench_inventory", {"sizes": [100_000, 1_000_000]}),
    # 1M in 3 slices, compared with the unpartitioned load; --sizes 10000000 for the 10M goals
    "partitions": ("benchmarks.bench_partitions", {"sizes": [1_000_000], "partition_rows": 400_000}),
    "pacing": ("benchmarks.bench_pacing", {"processes": 4, "seconds": 15.0}),
    "parse": ("benchmarks.bench_parse", {"accounts": 200, "repeats": 3}),
}
QUICK = {
    "mapping": {"rows": 20_000},
    "inventory": {"sizes": [20_000]},
    "partitions": {"sizes": [20_000], "partition_rows": 8_000},
    "pacing": {"processes": 4, "seconds": 5.0},
    "parse": {"accounts": 20, "repeats": 1},
}


def _table(records: list[dict[str, Any]]) -> str:
    cols: list[str] = []
    for rec in records:
        cols += [k for k in rec if k not in cols]
    width = {c: max(len(c), *(len(_fmt(r.get(c))) for r in records)) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols), "  ".join("-" * width[c] for c in cols)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(width[c]) for c in cols) for r in records]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="run only these suites")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the benchmarks work")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        metavar="SKUS",
        help="catalog sizes of the inventory and partitions suites (e.g. --sizes 10000000 for a "
        "supplier-wide catalog; the partitions suite then splits it by 2,000,000 SKUs, the default)",
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="inventory suite without the pandas and dlt peers (they hold the whole catalog in memory:"
        " about 2 GB per million SKUs)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON here instead of results/latest.json")
    args = parser.parse_args(argv)
    machine = describe()
    print(
        f"machine: {machine['cpu']} x{machine['cores']}, {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, Postgres {machine['postgres']}"
    )
    report: dict[str, Any] = {"machine": machine, "suites": {}}
    for name in args.only or sorted(SUITES):
        module, kwargs = SUITES[name]
        if args.quick:
            kwargs = QUICK[name]
        if name == "partitions" and args.sizes:
            kwargs = {"sizes": args.sizes, "partition_rows": 2_000_000}
        if name == "inventory":
            kwargs = {**kwargs, **({"sizes": args.sizes} if args.sizes else {})}
            kwargs = {**kwargs, **({"peers": False} if args.no_peers else {})}
        result = importlib.import_module(module).run(**kwargs)
        report["suites"][name] = result
        print(f"\n== {name} ==")
        print(_table(result["results"]))
        for line in result.get("notes", []):
            print(f"  {line}")
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
