"""Make the next items of an iterator on a thread while the consumer works on this one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def read_ahead(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """Run ``items`` on a thread, ``depth`` items ahead of the consumer.

    Worth it where making an item releases the GIL (Arrow parsing a CSV block or rendering one,
    DuckDB scanning): that work then overlaps the consumer's (mapping the block before, Postgres
    reading the COPY data sent before). Errors are re-raised here, and a consumer that stops early
    stops the thread.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: tuple[str, Any]) -> bool:
        """Hand one item over; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(("error", exc))

    worker = threading.Thread(target=produce, name="usdirect-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
