"""Mapping benchmark: map an N-row sandbox feed (clean and dirty) with the bundled inventory template.

Reports rows/s of the mapping alone (the CSV read is timed separately and excluded from the
target) and the peak RSS of the process that reads and maps. The feeds come from the sandbox
catalog generator and are written by a separate process; each measurement runs in a fresh
process so that one run's memory does not count towards the next one's peak.

Target (issue 5): 1,000,000 rows mapped in under 2 s on 2 cores, peak RSS under 1 GB.
Run alone with: .venv/bin/python benchmarks/bench_mapping.py [ROWS]
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "include" / "mappings" / "inventory.yaml"
SEED = 42
TARGET_SECONDS_PER_MILLION = 2.0
TARGET_PEAK_RSS_MB = 1024


def _in_fresh_process(func: Any, *args: Any, **kwargs: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(func, *args, **kwargs).result()


def _measure(path: Path, name: str) -> dict[str, Any]:
    """Read the feed batch by batch and map every batch; time the two parts separately."""
    from usdirect.mapping import load_template
    from usdirect.mapping.feed_reader import read_feed_batches

    template = load_template(TEMPLATE)
    reader = read_feed_batches(path, template, read_ahead=False)  # parsing would overlap mapping
    read_s = map_s = map_cpu = 0.0
    mapped = rejected = 0
    batches = iter(reader)
    while True:
        started = time.perf_counter()
        feed_batch = next(batches, None)
        read_s += time.perf_counter() - started
        if feed_batch is None:
            break
        started, cpu = time.perf_counter(), time.process_time()
        result = template.map_batch(feed_batch.batch, row_numbers=feed_batch.row_numbers)
        map_s += time.perf_counter() - started
        map_cpu += time.process_time() - cpu
        mapped += result.mapped.num_rows
        rejected += result.rejects.num_rows
    rows = reader.rows_read
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "name": name,
        "rows": rows,
        "seconds": round(map_s, 3),
        "rows_per_s": round(rows / map_s) if map_s else None,
        "cpu_seconds": round(map_cpu, 3),
        "read_seconds": round(read_s, 3),
        "peak_rss_mb": round(peak_rss_mb),
        "mapped": mapped,
        "rejected": rejected,
        "malformed": reader.malformed_rows,
        "feed_mb": round(path.stat().st_size / 2**20, 1),
        "target_met": map_s * 1_000_000 / max(rows, 1) < TARGET_SECONDS_PER_MILLION
        and peak_rss_mb < TARGET_PEAK_RSS_MB,
    }


def run(rows: int = 1_000_000) -> dict[str, Any]:
    """Generate clean and dirty sandbox feeds of `rows` rows, map each, return the figures."""
    from sandbox.catalog import write_feed_csv

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-mapping-") as tmp:
        for dirty in (False, True):
            path = Path(tmp) / f"feed-{'dirty' if dirty else 'clean'}.csv"
            _in_fresh_process(write_feed_csv, path, rows, SEED, dirty=dirty)
            name = f"map inventory feed ({'dirty' if dirty else 'clean'})"
            results.append(_in_fresh_process(_measure, path, name))
            path.unlink()
    return {
        "results": results,
        "notes": [
            "seconds = mapping only, wall clock (the CSV read is read_seconds); cpu_seconds = CPU time of"
            " the mapping on all threads (less sensitive to other load); peak_rss_mb = the read+map process",
            f"target: {TARGET_SECONDS_PER_MILLION:g} s per million rows, peak RSS < {TARGET_PEAK_RSS_MB} MB",
            "dirty feed: ~1 per 1,000 rows per broken kind (blank SKU, bad quantity/price, column count)",
        ],
    }


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
