"""Where Prometheus reads jobwire: `/metrics` on the API's port, or on a port of its own.

`instrument(api, metrics)` adds `/metrics` to the API and counts every request it answers (by
route template, so a token in a path never becomes a label). With the API off,
`metrics_only_app(metrics)` is served on JOBWIRE_METRICS__HOST:JOBWIRE_METRICS__PORT instead.
"""

from __future__ import annotations

import socket

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.operations.metrics import Metrics
from service.web import ApiUnavailable, bind, on_each_answer

PATH = "/metrics"


def instrument(api: FastAPI, metrics: Metrics) -> None:
    """Serve `/metrics` from `api` and count every answer it gives (413, 429...), as its
    request log does."""
    _add_metrics_route(api, metrics)
    on_each_answer(api, metrics.api_request)


def metrics_only_app(metrics: Metrics) -> FastAPI:
    """What JOBWIRE_METRICS__PORT serves when the API is off: `/metrics` and nothing else."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    _add_metrics_route(app, metrics)
    return app


def _add_metrics_route(app: FastAPI, metrics: Metrics) -> None:
    async def metrics_page(_: Request) -> Response:
        # A few hundred series: well under a millisecond, fine on the event loop.
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_route(PATH, metrics_page, methods=["GET"], include_in_schema=False)


def bind_metrics(host: str, port: int) -> socket.socket:
    """Listen for scrapes now, so a taken port stops start-up with a clear message."""
    try:
        return bind(host, port)
    except ApiUnavailable:
        raise ApiUnavailable(
            f"/metrics cannot listen on {host}:{port} (the API is off, so it has a port of its "
            "own); set JOBWIRE_METRICS__PORT to a free port"
        ) from None
