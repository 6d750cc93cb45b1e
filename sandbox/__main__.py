"""`python -m sandbox`: start the US Direct and Flxpoint-like servers; see `--help`."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from sandbox.server import serve
from sandbox.state import SandboxOptions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Local US Direct and Flxpoint-like API servers. Prints one JSON line with URLs and "
        "tokens, then serves until SIGTERM/SIGINT.",
    )
    p.add_argument("--usdirect-port", type=int, default=0, help="US Direct port (0: any free port)")
    p.add_argument("--flxpoint-port", type=int, default=0, help="Flxpoint-like port (0: any free port)")
    p.add_argument(
        "--seed", type=int, default=42, help="seed of the catalog, orders, platform data and faults"
    )
    p.add_argument("--catalog-size", type=int, default=5000, help="number of SKUs in the catalog")
    p.add_argument("--dirty", action="store_true", help="add broken rows to the feed")
    p.add_argument(
        "--fault",
        action="extend",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="fault rule 'METHOD /path KIND [key=value ...]', e.g. 'POST /v1/orders commit_drop times=1' "
        "(kinds: 429 500 502 503 504 reset slow truncate commit_drop; keys: times skip probability "
        "retry_after delay fraction after); several specs may follow one --fault, and --fault may repeat",
    )
    p.add_argument(
        "--state-file",
        type=Path,
        help="continue from the state saved in this file when it exists, and save the state (clock, "
        "catalog, orders, platform) there on shutdown",
    )
    p.add_argument("--data-dir", type=Path, help="where the feed files are written (default: a temp dir)")
    p.add_argument("--feed-limit", type=int, default=1, help="feed downloads per minute (0: no limit)")
    p.add_argument(
        "--rate-limit", type=int, default=5, help="US Direct requests per second per token (0: off)"
    )
    p.add_argument(
        "--platform-rate-limit", type=int, default=2, help="platform requests/s per token (0: off)"
    )
    p.add_argument("--good-frs", type=int, default=20, help="valid Unprocessed fulfillment requests to seed")
    p.add_argument(
        "--no-bad-frs", dest="bad_frs", action="store_false", help="do not seed the 6 bad requests"
    )
    p.add_argument(
        "--stale-platform",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="seed the platform with variants for this share of the catalog (0-1), most of them stale: "
        "quantity, cost, MSRP/MAP, archived though active, live though discontinued; plus 3 variants "
        "of another supplier",
    )
    p.add_argument(
        "--start-time",
        type=datetime.fromisoformat,
        help="simulated clock start, ISO 8601 with offset (default: now, to the hour)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    temp = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="usdirect-sandbox-")) if temp else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    extra = {"start_time": args.start_time} if args.start_time else {}
    options = SandboxOptions(
        data_dir=data_dir,
        seed=args.seed,
        catalog_size=args.catalog_size,
        dirty=args.dirty,
        faults=args.fault,
        feed_limit=args.feed_limit,
        rate_limit=args.rate_limit,
        platform_rate_limit=args.platform_rate_limit,
        good_frs=args.good_frs,
        bad_frs=args.bad_frs,
        stale_platform=args.stale_platform,
        state_file=args.state_file,
        **extra,
    )
    try:
        asyncio.run(serve(options, args.usdirect_port, args.flxpoint_port))
    finally:
        if temp:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
