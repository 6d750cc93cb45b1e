"""``read_ahead``: items made on a thread, handed over in order, errors and early stops included."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from usdirect.domain.read_ahead import read_ahead


def test_items_arrive_in_order_and_are_made_on_another_thread() -> None:
    makers: set[str] = set()

    def items() -> Iterator[int]:
        for n in range(50):
            makers.add(threading.current_thread().name)
            yield n

    assert list(read_ahead(items(), depth=3)) == list(range(50))
    assert makers == {"usdirect-read-ahead"}


def test_an_error_while_making_items_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise KeyError("column 'cost' is gone")

    got: list[int] = []
    with pytest.raises(KeyError, match="column 'cost' is gone"):
        got.extend(read_ahead(items()))
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_thread() -> None:
    made: list[int] = []

    def items() -> Iterator[int]:
        for n in range(10_000):
            made.append(n)
            yield n

    ahead = read_ahead(items(), depth=2)
    assert [next(ahead), next(ahead)] == [0, 1]
    ahead.close()  # joins the thread
    assert not any(t.name == "usdirect-read-ahead" for t in threading.enumerate())
    assert len(made) <= 5  # two taken, at most depth waiting, one being offered
