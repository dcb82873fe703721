"""The sending processes (service/delivery/send/senders.py), real ones, against a real webhook
server.

Requests and answers cross each child's pipe in batches; these tests check that every send
still gets its own answer, and that a child that dies fails only what it had in flight.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from config.settings import TargetSettings, TemplateSettings
from service.delivery import DeliveryFailed
from service.delivery.render import Message
from service.delivery.send import senders
from service.delivery.send.senders import SenderPool


class _Hook(BaseHTTPRequestHandler):
    """Answers 500 on /broken, holds /slow until `release` is set, else answers 200."""

    protocol_version = "HTTP/1.1"
    arrived: ClassVar[list[str]] = []
    slow_arrived = threading.Semaphore(0)
    release = threading.Event()
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.lock:
            self.arrived.append(body.decode())
        if self.path == "/slow":
            self.slow_arrived.release()
            self.release.wait(30)
        status = 500 if self.path == "/broken" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.arrived = []
    _Hook.slow_arrived = threading.Semaphore(0)
    _Hook.release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    _Hook.release.set()
    server.shutdown()
    server.server_close()


def _senders(processes: int, timeout_s: float) -> SenderPool:
    """Sending processes that may send to the test's webhook on loopback."""
    return SenderPool(
        TargetSettings(allowed_schemes=["json"], allow_private_hosts=True),
        TemplateSettings(),
        processes=processes,
        threads=4,
        timeout_s=timeout_s,
    )


@pytest.fixture
async def pool() -> AsyncIterator[SenderPool]:
    senders = _senders(processes=2, timeout_s=30)
    await senders.start()
    yield senders
    senders.close()


async def _outcome(pool: SenderPool, target: str, message: Message) -> str:
    try:
        await pool.send(target, message)
    except DeliveryFailed as exc:
        return f"failed: {exc}"
    return "sent"


async def test_sends_asked_for_in_one_turn_each_get_their_own_answer(
    pool: SenderPool, hook: str
) -> None:
    # 60 sends asked for at once go to the children as batches; half of them fail. Each
    # must come back with its own outcome, not its neighbour's.
    targets = [f"json://{hook}/{'broken' if n % 2 else 'fine'}" for n in range(60)]
    outcomes = await asyncio.gather(
        *(
            _outcome(pool, target, Message(f"alert {n}", f"body {n}"))
            for n, target in enumerate(targets)
        )
    )
    assert outcomes[0::2] == ["sent"] * 30
    assert all(o.startswith("failed: ") and "500" in o for o in outcomes[1::2]), outcomes[1::2]
    assert sorted(json.loads(body)["title"] for body in _Hook.arrived) == sorted(
        f"alert {n}" for n in range(60)
    )


async def test_a_sending_process_that_dies_fails_its_sends_in_flight_and_is_replaced(
    pool: SenderPool, hook: str
) -> None:
    held = [
        asyncio.create_task(_outcome(pool, f"json://{hook}/slow", Message(f"held {n}", "body")))
        for n in range(4)
    ]
    for _ in range(4):  # every send is at the server: in flight in its child
        assert await asyncio.to_thread(_Hook.slow_arrived.acquire, True, 20)
    children = [child.process.pid for child in pool._children]
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    outcomes = await asyncio.wait_for(asyncio.gather(*held), 20)
    assert outcomes == ["failed: the sending process stopped mid-send"] * 4
    # New children took their places, and send.
    assert await _outcome(pool, f"json://{hook}/fine", Message("after", "body")) == "sent"
    assert await _outcome(pool, f"json://{hook}/fine", Message("after 2", "body")) == "sent"
    assert all(child.process.pid not in children for child in pool._children)


async def test_a_send_with_no_answer_in_time_fails_and_a_cancelled_one_leaves_nothing_behind(
    hook: str,
) -> None:
    pool = _senders(processes=1, timeout_s=2)
    await pool.start()
    try:
        # The child is up and sending (starting it may take longer than the timeout).
        for _ in range(15):
            if await _outcome(pool, f"json://{hook}/fine", Message("up", "b")) == "sent":
                break
        late = asyncio.create_task(_outcome(pool, f"json://{hook}/slow", Message("late", "b")))
        cancelled = asyncio.create_task(pool.send(f"json://{hook}/slow", Message("gone", "b")))
        for _ in range(2):
            assert await asyncio.to_thread(_Hook.slow_arrived.acquire, True, 20)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert await late == "failed: no answer within 2 s"
        assert pool._children[0].waiting == {}  # neither answer is waited for any more
        # The server answers both at last: the answers find no one, and the child sends on.
        _Hook.release.set()
        assert await _outcome(pool, f"json://{hook}/fine", Message("next", "b")) == "sent"
    finally:
        pool.close()


class _Sent:
    """Stands for a child's end of the pipe: keeps each batch written."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, str | None]]] = []

    def send_bytes(self, data: bytes) -> None:
        self.batches.append(pickle.loads(data))


class _Interleaving:
    """A lock that lets another answer come just before its holder's `at`-th acquisition."""

    def __init__(self, at: int, another: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self.at = at  # 0: no other answer comes
        self._another = another
        self.acquired = 0
        self._in_another = False

    def __enter__(self) -> bool:
        if not self._in_another:
            self.acquired += 1
            if self.acquired == self.at:
                self._in_another = True
                self._another()
                self._in_another = False
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)


@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_an_answer_that_comes_as_the_writer_finishes_is_written_not_left_behind(at: int) -> None:
    # Left behind, an answer never reaches the service: its send times out and is retried,
    # so the alert goes out twice. The second answer comes at each point of the first's write.
    pipe = _Sent()
    answers = senders._Answers(pipe)  # type: ignore[arg-type]
    lock = _Interleaving(at, lambda: answers.put((2, None)))
    answers._lock = lock  # type: ignore[assignment]
    answers.put((1, None))
    if lock.acquired < at:  # the first write ended before that point: the second comes after
        lock.at = 0
        answers.put((2, None))
    assert sorted(answer for batch in pipe.batches for answer in batch) == [(1, None), (2, None)]
