"""Moved to service/web/ (the API, the pages, unsubscribe, sessions). These names stay here so
branches written against `service.api` still import; new code imports `service.web`."""

from __future__ import annotations

from service.web import ApiContext, ApiUnavailable, BodyLimit, bind, create_api, serve

__all__ = ["ApiContext", "ApiUnavailable", "BodyLimit", "bind", "create_api", "serve"]
