"""How jobwire's own processes set up the interpreter, once each, for what they do all day.

Two settings, each measured (docs/performance.md), each made only in processes `jobwire run`
owns (`settle()` in the service and its sending processes, `hand_over_promptly()` in the
service): a test or a program that embeds jobwire keeps CPython's defaults.

## `settle()`: start-up's objects set aside, so the collector stops walking them for nothing

CPython's full collection (its generation 2) walks every container object it tracks, and
start-up leaves 100,000-170,000 of them in jobwire's processes: Apprise's plugins, SQLAlchemy,
pydantic, FastAPI, the subscriptions' index. Measured with `gc.callbacks` in the benchmark's
latency row, a full collection paused the service's event loop for 40-120 ms (the sending
processes for 25-95 ms), several times in the first seconds of sending and again whenever
enough new long-lived objects had piled up; every alert in flight waited it out. Start-up's
objects live as long as the process: walking them never frees anything.

`settle()`, called once a process is ready, collects start-up's own garbage and then moves
what is left into the collector's permanent generation (`gc.freeze()`), which collections
skip. Objects made after it are collected as before, and reference counting still frees a
frozen object nothing refers to. What freezing gives up: a cycle of frozen objects that later
becomes garbage is never freed. Start-up's objects are the process's own machinery (modules,
the app, the store's engine, the matcher), meant to last until it ends; each process settles
once, so at most what start-up made and later dropped is kept, never more with time.

## `hand_over_promptly()`: the lock handed over, so the store's thread is not kept waiting

The service's event loop runs in one thread and SQLite in another (aiosqlite's, one per
connection), which needs the interpreter's lock at each step of a statement: to start it,
when SQLite returns, and to hand the result back to the loop. While the loop is busy with
pure Python (decoding and matching the next batch), a thread that wants the lock gets it only
once the holder is asked to let go, and CPython asks only after its switch interval: 5 ms by
default. A batch's ledger write was four trips to SQLite's thread (two inserts, the commit,
the pool's reset; three since the reset asks first, service/store/engine.py), each of which
could wait that long at either end. Measured in-process at fan-out 1, a batch's first insert
came back after 9.6 ms for 2.1 ms of SQLite's work, and the loop sat idle half the time
waiting for the write: the hand-overs, not either thread's work, set the pace of ingest.

`jobwire run` sets the interval to 0.5 ms. The lock changes hands only when another thread is
waiting for it, so a process with one busy thread pays nothing; with the store's thread
waiting, the loop gives way within 0.5 ms. Ingest at fan-out 1 on SQLite, through Kafka
(bench/bench_pipeline.py), alternated six times in two sets an hour apart: +17% and +3% on the
means, five rounds of six faster (docs/performance.md). Only the service's own process: a
sending process's threads spend their time in the network with the lock released, and were
not measured with it.
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_S = 0.0005


def settle() -> int:
    """Free start-up's garbage, then set what remains aside from every later collection;
    returns how many objects were set aside."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def hand_over_promptly() -> float:
    """Have the running thread give the lock to a waiting one within `SWITCH_INTERVAL_S`;
    returns the interval it had before."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return before
