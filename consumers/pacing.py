"""Waiting that a stop cuts short, and the growing pause between attempts that keep failing.

Every loop in jobwire that sleeps (a health check, a refresh, retention, a restart after a
failure) must wake at once when the service stops, or a Ctrl-C waits out the longest sleep.
The consumer, the first stage, has these loops as much as the stages after it, so they live
here, where every stage may import them.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, less if `stop` is set meanwhile; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


class Backoff:
    """Pauses between attempts: 1 s, then twice as long each time, up to 30 s."""

    def __init__(self, first_s: float = 1.0, cap_s: float = 30.0) -> None:
        self.delay_s = first_s
        self._cap_s = cap_s

    def grow(self) -> None:
        """The attempt after this pause failed too: pause longer next time."""
        self.delay_s = min(self.delay_s * 2, self._cap_s)
