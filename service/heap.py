"""Start-up's objects set aside, so the garbage collector stops walking them for nothing.

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
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Free start-up's garbage, then set what remains aside from every later collection;
    returns how many objects were set aside."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
