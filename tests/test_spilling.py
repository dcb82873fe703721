"""The sending processes' thread pool: quick sends on few threads, slow ones never in the way."""

from __future__ import annotations

import threading
import time

import pytest

from service.delivery.spilling import SpillingPool


def test_sends_that_end_at_once_run_one_after_another_on_few_threads() -> None:
    """Every thread busy at once costs CPU in hand-overs of the interpreter's lock; sends to a
    target that answers at once need no more than one or two."""
    pool = SpillingPool(16)
    try:
        futures = [pool.submit(threading.get_ident) for _ in range(500)]
        ran_on = {future.result(timeout=5) for future in futures}
    finally:
        pool.shutdown()
    assert len(ran_on) <= 3
    assert pool.threads_started <= 3  # a plain pool of 16 would have started all 16


def test_a_slow_send_does_not_hold_up_the_ones_behind_it() -> None:
    pool = SpillingPool(4)
    answer = threading.Event()
    try:
        slow = pool.submit(answer.wait, 10)
        quick = [pool.submit(time.sleep, 0) for _ in range(20)]
        for future in quick:
            future.result(timeout=2)  # done while the slow one still waits for its answer
        assert not slow.done()
    finally:
        answer.set()
        pool.shutdown()
    assert slow.result() is True


def test_slow_sends_spill_onto_every_thread_and_no_further() -> None:
    pool = SpillingPool(3)
    answer = threading.Event()
    started = threading.Semaphore(0)
    running = 0
    most = 0
    counting = threading.Lock()

    def slow_send() -> None:
        nonlocal running, most
        with counting:
            running += 1
            most = max(most, running)
        started.release()
        answer.wait(10)
        with counting:
            running -= 1

    futures = [pool.submit(slow_send) for _ in range(5)]
    try:
        for _ in range(3):
            assert started.acquire(timeout=2), "the slow sends did not spill onto 3 threads"
        assert not started.acquire(timeout=0.2)  # the other two wait for a thread
    finally:
        answer.set()
        pool.shutdown()
    for future in futures:
        future.result(timeout=5)
    assert most == 3


def test_a_stop_runs_what_was_queued_and_a_failure_reaches_its_caller() -> None:
    pool = SpillingPool(2)
    answer = threading.Event()
    waiting = [pool.submit(answer.wait, 10) for _ in range(2)]
    queued = pool.submit(lambda: "sent")

    def refused() -> None:
        raise ConnectionRefusedError("no")

    failing = pool.submit(refused)
    answer.set()
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in waiting] == [True, True]
    assert queued.result(timeout=0) == "sent"
    with pytest.raises(ConnectionRefusedError):
        failing.result(timeout=0)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
