"""Sending in processes of their own, so delivery uses more than the one core Python allows.

An Apprise send costs CPU in Python, all under the interpreter's lock (the plugin's own work,
then the HTTP request: about 0.3 ms for a warm `json://` send with plain_http.py, 1.4 ms when
requests did it all): one process sends at most a few thousand alerts a second however many
threads it has, while jobwire's consumer, ledger and API want the same core. `SenderPool`
runs the sends in `processes` child processes, each with a few threads and the same
`AppriseNotifier` (plugins reused per target, the egress guard around every send); the
service's process only claims, renders and records.

Each child reads requests from a pipe and answers on it: (request id, error or None). A child
that dies fails its sends in flight (they are retried like any failed send) and is started
again. The pool is a `Notifier`, so the worker cannot tell it from the in-process one.

Requests and answers cross the pipe in batches, each one message (service/child_pipes.py):
the service sends what one turn of its event loop asked of a child, and a child's answers go
out together while the last batch of them is being written. One message per send cost the
service about a tenth of its time at 1,000+ webhooks a second (multiprocessing's pickler is
made anew for each message, and each is a write and a wake-up on both ends). Plain pickle is
enough: what crosses is strings, numbers and a message's recipe, never a socket or a handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from config.settings import TargetSettings, TemplateSettings
from service import interpreter
from service.child_pipes import put, take
from service.delivery.render import Message, Renderer
from service.delivery.render.renderer import remake
from service.delivery.send.notifier import AppriseNotifier, DeliveryFailed
from service.redaction import scrub
from service.targets import TargetPolicy

log = structlog.get_logger("jobwire.delivery")

# A message travels as its recipe (the child's Renderer makes it again, so the rendering is
# done off the service's core too) or, for one made by hand, as what it says.
Said = tuple[str, str, str | None, str | None, str | None]
Payload = tuple[str, Any]
Request = tuple[int, str, Payload]
Reply = tuple[int, str | None]


def _payload(message: Message) -> Payload:
    if message.recipe is not None:
        return ("recipe", message.recipe)
    return ("said", message._said())


def _message(payload: Payload, renderer: Renderer) -> Message:
    kind, content = payload
    if kind == "recipe":
        return remake(renderer, content)
    title, body, html, markdown, unsubscribe_url = content
    return Message(title, body, unsubscribe_url, html=html, markdown=markdown)


def equip(
    targets: TargetSettings, templates: TemplateSettings, threads: int
) -> tuple[AppriseNotifier, Renderer]:
    """What a sending process builds before its first send (its policy from settings: Apprise
    loads its plugins' modules then). bench/bench_gc_pause.py builds the same."""
    notifier = AppriseNotifier(TargetPolicy.from_settings(targets), threads, timeout_s=0)
    renderer = Renderer.from_settings(templates)  # already checked by the service at start
    return notifier, renderer


def _serve(
    conn: multiprocessing.connection.Connection,
    targets: TargetSettings,
    templates: TemplateSettings,
    threads: int,
) -> None:
    """A child's life: send what arrives, answer each request once, until told to stop."""
    notifier, renderer = equip(targets, templates, threads)
    answers = _Answers(conn)
    interpreter.settle()  # full collections skip start-up's objects from here on

    def send(request_id: int, target: str, payload: Payload) -> None:
        error: str | None = None
        try:
            notifier.send_blocking(target, _message(payload, renderer))
        except DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # a bug in a plugin must not stop the child
            error = scrub(f"{type(exc).__name__}: {exc}", target)
        answers.put((request_id, error))

    with ThreadPoolExecutor(threads, thread_name_prefix="sender") as pool:
        while True:
            try:
                batch: list[Request] | None = take(conn)
            except EOFError:  # the service is gone
                break
            if batch is None:
                break
            for request in batch:
                pool.submit(send, *request)


def _no_answer(future: asyncio.Future[str | None], timeout_s: float) -> None:
    if not future.done():
        future.set_exception(DeliveryFailed(f"no answer within {timeout_s:g} s"))


class _Answers:
    """A child's answers, written in batches by whichever sending thread finds none being
    written: the answers that come while one batch is written go out in the next, so under
    load a write carries many, and alone an answer goes out at once."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._waiting: list[Reply] = []
        self._writing = False

    def put(self, answer: Reply) -> None:
        with self._lock:
            self._waiting.append(answer)
            if self._writing:
                return  # the thread writing takes it with its next batch
            self._writing = True
        try:
            while True:
                with self._lock:
                    batch, self._waiting = self._waiting, []
                    if not batch:
                        # Under the same lock as the look: an answer put after it writes
                        # itself, instead of waiting for a writer that has gone.
                        self._writing = False
                        return
                put(self._conn, batch)
        except BaseException:
            with self._lock:
                self._writing = False
            raise


@dataclass(eq=False)  # a child is itself: `in` and `index` compare identity
class _Child:
    process: Any
    conn: multiprocessing.connection.Connection
    waiting: dict[int, asyncio.Future[str | None]] = field(default_factory=dict)
    outbox: list[Request] = field(default_factory=list)  # written at the loop's next turn


class SenderPool:
    """A Notifier whose sends run in child processes."""

    def __init__(
        self,
        targets: TargetSettings,
        templates: TemplateSettings,
        processes: int,
        threads: int,
        timeout_s: float,
    ) -> None:
        self._targets = targets
        self._templates = templates
        self._threads = threads
        self._timeout_s = timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._children: list[_Child] = []
        self._ids = itertools.count()
        self._turn = itertools.cycle(range(processes))
        self._processes = processes
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._children = [self._spawn() for _ in range(self._processes)]
        log.info("delivery.senders_started", processes=self._processes, threads=self._threads)

    def _spawn(self) -> _Child:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(theirs, self._targets, self._templates, self._threads),
            daemon=True,
        )
        process.start()
        theirs.close()
        child = _Child(process, mine)
        assert self._loop is not None
        self._loop.add_reader(mine.fileno(), self._answered, child)
        return child

    def _answered(self, child: _Child) -> None:
        try:
            while child.conn.poll():
                answers: list[Reply] = take(child.conn)
                for request_id, error in answers:
                    future = child.waiting.pop(request_id, None)
                    if future is not None and not future.done():
                        future.set_result(error)
        except (EOFError, OSError):
            self._lost(child)

    def _write(self, child: _Child) -> None:
        """Write the requests this turn of the loop asked of `child`, in one batch."""
        batch, child.outbox = child.outbox, []
        if child not in self._children:
            return  # lost meanwhile: its sends have already failed
        try:
            put(child.conn, batch)
        except OSError:
            self._lost(child)

    def _lost(self, child: _Child) -> None:
        """A child died: its sends fail (and are retried), and another takes its place."""
        assert self._loop is not None
        if child not in self._children:
            return  # noticed already, by a read or a write
        self._loop.remove_reader(child.conn.fileno())
        child.conn.close()
        for future in child.waiting.values():
            if not future.done():
                future.set_exception(DeliveryFailed("the sending process stopped mid-send"))
        index = self._children.index(child)
        log.error("delivery.sender_lost", exit_code=child.process.exitcode)
        self._children[index] = self._spawn()

    async def send(self, target: str, message: Message) -> None:
        assert self._loop is not None, "start() the pool first"
        child = self._children[next(self._turn)]
        request_id = next(self._ids)
        future: asyncio.Future[str | None] = self._loop.create_future()
        child.waiting[request_id] = future
        if not child.outbox:
            self._loop.call_soon(self._write, child)
        child.outbox.append((request_id, target, _payload(message)))
        # A timer on the answer itself: asyncio.wait_for wraps it in a future and callbacks
        # of its own, 5% of the service's CPU at 1,300 webhooks a second. A cancelled send
        # cancels the answer it awaits, as wait_for did.
        timer = self._loop.call_later(self._timeout_s, _no_answer, future, self._timeout_s)
        try:
            error = await future
        finally:
            timer.cancel()
            child.waiting.pop(request_id, None)
        if error is not None:
            raise DeliveryFailed(error)

    def close(self) -> None:
        for child in self._children:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(child.conn.fileno())
            with contextlib.suppress(OSError):  # already gone
                put(child.conn, None)
            child.conn.close()
        for child in self._children:
            child.process.join(timeout=5)
            if child.process.is_alive():
                child.process.kill()
        self._children = []
