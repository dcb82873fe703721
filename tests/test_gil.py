"""service/gil.py: how soon a busy thread gives the interpreter's lock to a waiting one."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from service import gil


@pytest.fixture(autouse=True)
def interval_restored() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_the_lock_is_handed_over_ten_times_sooner_than_cpythons_default() -> None:
    sys.setswitchinterval(0.005)  # CPython's default
    before = gil.hand_over_promptly()
    assert before == 0.005
    assert sys.getswitchinterval() == pytest.approx(0.0005)
