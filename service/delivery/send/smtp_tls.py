"""TLS contexts for Apprise's email plugin, built once instead of for every email.

Apprise 2.3's SMTP plugin calls `ssl.create_default_context()` for every email it sends, even
over plain SMTP where the context is never used; loading the system's trusted certificates
costs about 20 ms of CPU, which capped email at about 45 a second per process. The plugin's
module is given an `ssl` whose `create_default_context()` hands out a deferred context: a
connection that is secured gets the one verified context, built once and shared (a context
is safe to share between connections and threads); one that asks for changes (`?verify=no`
sets `check_hostname` and `verify_mode`) gets a context of its own with those changes, so the
shared one is never altered.
"""

from __future__ import annotations

import functools
import ssl
import types
from typing import Any

import apprise.plugins.email.smtp as apprise_smtp


@functools.cache
def _verified() -> ssl.SSLContext:
    return ssl.create_default_context()


class DeferredContext:
    """Stands for `ssl.create_default_context()` until a connection is secured with it."""

    __slots__ = ("_changes", "_made")

    def __init__(self) -> None:
        object.__setattr__(self, "_changes", {})
        object.__setattr__(self, "_made", None)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._made is not None and self._made is not _verified():
            setattr(self._made, name, value)
        else:
            object.__setattr__(self, "_made", None)
            self._changes[name] = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context(), name)

    def context(self) -> ssl.SSLContext:
        made: ssl.SSLContext | None = self._made
        if made is None:
            if not self._changes:
                made = _verified()
            else:
                made = ssl.create_default_context()
                for name, value in self._changes.items():
                    setattr(made, name, value)
            object.__setattr__(self, "_made", made)
        return made


def install() -> None:
    """Give Apprise's SMTP plugin the deferred contexts (idempotent)."""
    plugin: Any = apprise_smtp  # its `ssl` is the module it imported, not an export
    if isinstance(plugin.ssl, types.SimpleNamespace):
        return
    shim = types.SimpleNamespace(**{name: getattr(ssl, name) for name in dir(ssl)})
    shim.create_default_context = DeferredContext
    plugin.ssl = shim
