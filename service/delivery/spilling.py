"""A thread pool that runs blocking sends on as few threads as keep them moving.

Apprise's sends block (requests, smtplib), so a sending process runs them on threads. But the
threads of one process share the interpreter's lock: every socket call gives it up and takes it
back, and with many threads busy at once each of those is a hand-over to another thread, paid
in CPU. Measured in a sending process against a webhook server that answers at once, 16 sends
in flight, alternated three times: 1,110–1,290 µs of CPU a send on a plain pool of 16 threads,
830–1,100 µs on this one (a fifth less on average).

So a queued send starts on a further thread only when every send running has run for longer
than three times what a send costs in CPU (measured as sends end, kept between 0.5 and 5 ms):
by then it is waiting on the network, not on the core. Against targets that answer at once the
sends mostly run one after another, each thread taking the next itself as it finishes, without
waking another. A slow target (a chat service abroad, a mail server that greets slowly) holds
its thread while the other sends spill onto further threads, up to `threads`, as a plain pool
would have run them at once. What a slow send costs the others is that wait, a few
milliseconds; and while every send in flight is slow, sends start at most once per wait.

One idle thread at a time (the spiller) waits with a timeout for the running sends to pass
that mark; the other idle threads sleep until they are needed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# What a send is taken to cost in CPU before any has ended, and the bounds of the wait before
# a queued send spills onto another thread (three times that cost).
FIRST_CPU_S = 0.001
MIN_SPILL_S = 0.0005
MAX_SPILL_S = 0.005

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class SpillingPool(Executor):
    """An `Executor` for blocking sends (see the module's notes)."""

    def __init__(self, threads: int, name: str = "sender") -> None:
        if threads < 1:
            raise ValueError("a pool needs at least one thread")
        self._most = threads
        self._name = name
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._started: dict[int, float] = {}  # a busy thread's ident -> when its send began
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._starting = 0  # threads added that have not looked at the queue yet
        self._spiller = False  # an idle thread waits, with a timeout, to spill the queue
        self._stopping = False
        self._cpu_s = FIRST_CPU_S  # a send's CPU, averaged over the last few dozen

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the pool is shut down")
            self._queue.append((future, fn, args, kwargs))
            self._call_one()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """What is queued still runs (unless `cancel_futures`); then the threads end."""
        with self._cond:
            self._stopping = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft()[0].cancel()
            self._cond.notify_all()
        if wait:
            for thread in list(self._threads):
                thread.join()

    @property
    def threads_started(self) -> int:
        return len(self._threads)

    def _call_one(self) -> None:
        """Someone must start or spill what is queued (under the lock). A wake is a hand-over
        of the interpreter's lock, so an idle thread is woken only if it can start a send now
        or none waits to spill yet; with none idle a thread is added, up to `threads`."""
        if self._idle:
            if not self._spiller or self._wait_s(time.monotonic()) == 0:
                self._cond.notify()
        elif not self._starting and len(self._threads) < self._most:
            self._starting += 1  # it looks at the queue first thing
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _wait_s(self, now: float) -> float:
        """0 if a queued send may start now, else how long until it may (under the lock)."""
        if not self._started:
            return 0.0
        spill_s = min(MAX_SPILL_S, max(MIN_SPILL_S, 3 * self._cpu_s))
        return max(0.0, max(self._started.values()) + spill_s - now)

    def _work(self) -> None:
        job = self._next(None, new=True)
        while job is not None:
            future, fn, args, kwargs = job
            cpu_s = None
            if future.set_running_or_notify_cancel():
                began = time.thread_time()
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                cpu_s = time.thread_time() - began
            job = self._next(cpu_s)

    def _next(self, cpu_s: float | None, new: bool = False) -> _Job | None:
        """This thread's next send, once it may start; None when the pool stops. `cpu_s` is
        what its last send cost."""
        with self._cond:
            if new:
                self._starting -= 1
            self._started.pop(threading.get_ident(), None)
            if cpu_s is not None:
                self._cpu_s += (cpu_s - self._cpu_s) / 32
            self._idle += 1
            try:
                job = self._wait_for_turn()
            finally:
                self._idle -= 1
            if job is not None and self._queue:
                self._call_one()  # the next in line: another thread starts or spills it
            return job

    def _wait_for_turn(self) -> _Job | None:
        """(Under the lock, counted idle.) As the spiller if there is none yet, else asleep."""
        while True:
            if self._queue:
                now = time.monotonic()
                wait_s = self._wait_s(now)
                if wait_s == 0:
                    self._started[threading.get_ident()] = now
                    return self._queue.popleft()
                if not self._spiller:
                    self._spiller = True
                    try:
                        self._cond.wait(wait_s)
                    finally:
                        self._spiller = False
                    continue
            elif self._stopping:
                return None
            self._cond.wait()
