"""Serving the web app: listening early, a streamed body limit, watching each answer, and
uvicorn inside jobwire."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiUnavailable(Exception):
    """The API cannot listen; the message says which setting to change."""


MAX_BODY_BYTES = 256 * 1024


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, counting the bytes as they arrive.

    Content-Length alone is not enough: a chunked request has none, and FastAPI reads a body
    before it checks the API key, so 100 MB sent unauthenticated was read whole (the process
    grew from 115 MB to 422 MB). A pure ASGI middleware, so nothing buffers the body first.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while it reads the body on as it
                    # is (any other exception would become a 400).
                    raise HTTPException(413, self._detail())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)

    def _detail(self) -> str:
        return f"the body must be at most {self.max_bytes // 1024} KiB"

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse({"detail": self._detail()}, status_code=413)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [*response.raw_headers, (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": response.body})


# Told of each request answered: its route's template, method, status and seconds taken.
OnAnswer = Callable[[str, str, int, float], None]


def on_each_answer(app: FastAPI, listener: OnAnswer) -> None:
    """Tell `listener` of every request `app` answers (the request log, the request metrics).

    One `AnswerWatch` serves every listener: the first call puts it in place, so call it once
    the middleware whose answers it must see (the body limit's 413) is in place."""
    listeners: list[OnAnswer] | None = getattr(app.state, "answer_listeners", None)
    if listeners is None:
        listeners = app.state.answer_listeners = []
        app.add_middleware(AnswerWatch, listeners=listeners)
    listeners.append(listener)


class AnswerWatch:
    """Tells each of `listeners` about every HTTP request once it is answered.

    It reports the route's template, never the path: unsubscribe and sign-in paths hold
    tokens. A request whose handler raised is reported as the 500 it gets. This is a pure
    ASGI middleware. Starlette's `@app.middleware("http")` runs each request through a task
    group and memory streams; with two of them, that was a third of the answer to `/healthz`.
    """

    def __init__(self, app: ASGIApp, listeners: list[OnAnswer]) -> None:
        self.app = app
        self.listeners = listeners  # the list itself: listeners added later are told too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the handler raises before answering

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            # The router put the route it chose into this same scope.
            route = getattr(scope.get("route"), "path", "(no route)")
            seconds = time.perf_counter() - started
            for listener in self.listeners:
                listener(route, scope["method"], status, seconds)


def bind(host: str, port: int, shared: bool = False) -> socket.socket:
    """Listen now, so a taken port stops start-up with a clear message. `shared`: other
    processes of this user may listen on the same port too (SO_REUSEPORT), and the kernel
    spreads new connections over all of them (service/web/processes.py)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        if not hasattr(socket, "SO_REUSEPORT"):
            sock.close()
            raise ApiUnavailable(
                "API processes share their port through SO_REUSEPORT, which this system "
                "lacks; set JOBWIRE_API__PROCESSES=1"
            )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Accepted connections inherit this. Without it a keep-alive client waits out Nagle and
    # delayed ACK on every request after the first: 44 ms instead of 1 ms (bench/bench_api.py).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ApiUnavailable(
            f"the API cannot listen on {host}:{port} ({exc.strerror}); set JOBWIRE_API__PORT "
            "to a free port, or JOBWIRE_API__ENABLED=false to run without the API"
        ) from None
    sock.listen(128)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # jobwire's own handlers stop every part in order; uvicorn's would replace them.
        yield


async def serve(api: FastAPI, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then finish the requests in progress."""
    config = uvicorn.Config(
        api, log_config=None, access_log=False, lifespan="off", server_header=False
    )
    server = _Server(config)

    async def stop_when_asked() -> None:
        await stop.wait()
        server.should_exit = True

    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[sock])
    finally:
        stopper.cancel()
        sock.close()
