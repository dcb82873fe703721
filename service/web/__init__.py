"""What people reach over HTTP: the subscriptions API, the subscribers' web page, the
unsubscribe links. `create_api` builds the app; `bind` and `serve` run it inside `jobwire run`.
"""

from __future__ import annotations

from service.web.app import create_api
from service.web.context import ApiContext
from service.web.server import ApiUnavailable, BodyLimit, bind, on_each_answer, serve

__all__ = [
    "ApiContext",
    "ApiUnavailable",
    "BodyLimit",
    "bind",
    "create_api",
    "on_each_answer",
    "serve",
]
