"""Start-up's objects set aside from the garbage collector (service/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from service import heap


class _Node:
    """A container the collector tracks, that can point at itself (a cycle)."""

    other: object = None


def garbage_cycle() -> weakref.ref[_Node]:
    """A cycle nothing else refers to (only the collector frees it); a weak reference to it."""
    cycle = _Node()
    cycle.other = cycle
    return weakref.ref(cycle)


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


def test_start_ups_garbage_is_freed_not_set_aside() -> None:
    gone = garbage_cycle()
    heap.settle()
    assert gone() is None


def test_what_start_up_keeps_is_no_longer_walked_by_collections() -> None:
    kept = _Node()
    set_aside = heap.settle()
    assert set_aside >= 1
    assert not any(obj is kept for obj in gc.get_objects())


def test_what_is_made_after_start_up_is_still_collected() -> None:
    heap.settle()
    gone = garbage_cycle()
    gc.collect()
    assert gone() is None
