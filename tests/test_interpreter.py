"""service/interpreter.py: start-up's objects set aside from the garbage collector, and how
soon a busy thread gives the interpreter's lock to a waiting one."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from service import interpreter


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
    interpreter.settle()
    assert gone() is None


def test_what_start_up_keeps_is_no_longer_walked_by_collections() -> None:
    kept = _Node()
    set_aside = interpreter.settle()
    assert set_aside >= 1
    assert not any(obj is kept for obj in gc.get_objects())


def test_what_is_made_after_start_up_is_still_collected() -> None:
    interpreter.settle()
    gone = garbage_cycle()
    gc.collect()
    assert gone() is None


@pytest.fixture(autouse=True)
def interval_restored() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_the_lock_is_handed_over_ten_times_sooner_than_cpythons_default() -> None:
    sys.setswitchinterval(0.005)  # CPython's default
    before = interpreter.hand_over_promptly()
    assert before == 0.005
    assert sys.getswitchinterval() == pytest.approx(0.0005)
