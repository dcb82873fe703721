"""The interpreter's lock handed over promptly, so the store's thread is not kept waiting.

The service's event loop runs in one thread and SQLite in another (aiosqlite's, one per
connection), which needs the interpreter's lock at each step of a statement: to start it,
when SQLite returns, and to hand the result back to the loop. While the loop is busy with
pure Python (decoding and matching the next batch), a thread that wants the lock gets it only
once the holder is asked to let go, and CPython asks only after its switch interval: 5 ms by
default. A batch's ledger write is four trips to SQLite's thread (two inserts, the commit, the
pool's reset), each of which can wait that long at either end. Measured in-process at fan-out 1,
a batch's first insert came back after 9.6 ms for 2.1 ms of SQLite's work, and the loop sat
idle half the time waiting for the write: the hand-overs, not either thread's work, set the
pace of ingest.

`jobwire run` sets the interval to 0.5 ms. The lock changes hands only when another thread is
waiting for it, so a process with one busy thread pays nothing; with the store's thread
waiting, the loop gives way within 0.5 ms. Ingest at fan-out 1 on SQLite, through Kafka
(bench/bench_pipeline.py), alternated six times in two sets an hour apart: +17% and +3% on the
means, five rounds of six faster (docs/performance.md). Only the service's own process: a
sending process's threads spend their time in the network with the lock released, and were
not measured with it.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0005


def hand_over_promptly() -> float:
    """Have the running thread give the lock to a waiting one within `SWITCH_INTERVAL_S`;
    returns the interval it had before."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return before
