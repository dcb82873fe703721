"""Sending in processes of their own, so delivery uses more than the one core Python allows.

An Apprise send costs about 1.4 ms of CPU in Python (building the request, requests and urllib3,
the plugin's own work), all under the interpreter's lock: one process sends at most about 700
alerts a second however many threads it has, while jobwire's consumer, ledger and API want the
same core. `SenderPool` runs the sends in `processes` child processes, each with a few threads
and the same `AppriseNotifier` (plugins reused per target, the egress guard around every send);
the service's process only claims, renders and records.

Each child reads requests from a pipe and answers on it: (request id, error or None). A child
that dies fails its sends in flight (they are retried like any failed send) and is started
again. The pool is a `Notifier`, so the worker cannot tell it from the in-process one.
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
from service.delivery.notifier import AppriseNotifier, DeliveryFailed
from service.delivery.render import Message, Renderer
from service.delivery.render.renderer import remake
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
    answering = threading.Lock()
    interpreter.settle()  # full collections skip start-up's objects from here on

    def send(request_id: int, target: str, payload: Payload) -> None:
        error: str | None = None
        try:
            notifier.send_blocking(target, _message(payload, renderer))
        except DeliveryFailed as exc:
            error = str(exc)
        except Exception as exc:  # a bug in a plugin must not stop the child
            error = scrub(f"{type(exc).__name__}: {exc}", target)
        with answering:
            conn.send((request_id, error))

    with ThreadPoolExecutor(threads, thread_name_prefix="sender") as pool:
        while True:
            try:
                request = conn.recv()
            except EOFError:  # the service is gone
                break
            if request is None:
                break
            pool.submit(send, *request)


@dataclass
class _Child:
    process: Any
    conn: multiprocessing.connection.Connection
    waiting: dict[int, asyncio.Future[str | None]] = field(default_factory=dict)


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
                request_id, error = child.conn.recv()
                future = child.waiting.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result(error)
        except (EOFError, OSError):
            self._lost(child)

    def _lost(self, child: _Child) -> None:
        """A child died: its sends fail (and are retried), and another takes its place."""
        assert self._loop is not None
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
        try:
            child.conn.send((request_id, target, _payload(message)))
        except OSError:
            child.waiting.pop(request_id, None)
            self._lost(child)
            raise DeliveryFailed("the sending process stopped mid-send") from None
        try:
            error = await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self._timeout_s:g} s") from None
        finally:
            child.waiting.pop(request_id, None)
        if error is not None:
            raise DeliveryFailed(error)

    def close(self) -> None:
        for child in self._children:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(child.conn.fileno())
            with contextlib.suppress(OSError):  # already gone
                child.conn.send(None)
            child.conn.close()
        for child in self._children:
            child.process.join(timeout=5)
            if child.process.is_alive():
                child.process.kill()
        self._children = []
