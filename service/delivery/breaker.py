"""The per-target breaker: while a target fails, one alert probes it and the rest wait.

Like a circuit breaker per target. A target that fails is held: its waiting alerts are not sent
(and use no attempts) until the hold ends; then exactly one alert probes it. A probe that gets
through frees the target; one that fails holds it longer (exponential backoff), and after
`max_failures` the target is declared dead with its waiting alerts. One object, and only
`admit`, `succeeded`, `failed` and `abandoned` change it, so two probes can never run at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from service.store import utcnow


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether an alert may go to its target now: `send` (the target is fine), `probe` (held,
    and this alert tests it), or `wait` until `until`."""

    verdict: Literal["send", "probe", "wait"]
    until: datetime | None = None


SEND = Admission("send")
PROBE = Admission("probe")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a failure means: try the alert again at `retry_at`, or `dead`."""

    dead: bool
    retry_at: datetime
    failures: int


@dataclass
class _Hold:
    failures: int
    until: datetime
    probing: bool = False


class TargetBreaker:
    def __init__(
        self,
        max_failures: int,
        backoff: Callable[[int], float],
        probe_timeout_s: float,
        dead_hold_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.max_failures = max_failures
        self._backoff = backoff
        self._probe_timeout = timedelta(seconds=probe_timeout_s)
        self._dead_hold = timedelta(seconds=dead_hold_s)
        self._clock = clock
        self._holds: dict[int, _Hold] = {}

    def admit(self, target: int) -> Admission:
        hold = self._holds.get(target)
        if hold is None:
            return SEND
        now = self._clock()
        if hold.probing:
            # Wait for the probe's answer; it comes within its send timeout, and its outcome
            # releases or holds the waiting alerts (never a time already past, which would
            # make the alert due again at once and spin through claim and defer).
            return Admission("wait", max(hold.until, now + self._probe_timeout))
        if now < hold.until:
            return Admission("wait", hold.until)
        hold.probing = True
        return PROBE

    def succeeded(self, target: int, admission: Admission) -> bool:
        """The target took an alert; returns whether that ended a hold."""
        if admission.verdict == "probe" or target in self._holds:
            return self._holds.pop(target, None) is not None
        return False

    def failed(self, target: int, admission: Admission) -> Verdict:
        now = self._clock()
        hold = self._holds.get(target)
        if hold is None:
            hold = self._holds[target] = _Hold(failures=1, until=now)
        elif admission.verdict == "probe":
            hold.failures += 1
            hold.probing = False
        # else: an alert already in flight when the target first failed: the hold counts that
        # outage once, not once per alert caught in it.
        if hold.failures >= self.max_failures:
            # Dead, but the hold stays: later alerts probe once per longest backoff, and die
            # at once if it still fails, until one gets through.
            hold.until = now + self._dead_hold
            return Verdict(dead=True, retry_at=hold.until, failures=hold.failures)
        hold.until = now + timedelta(seconds=self._backoff(hold.failures))
        return Verdict(dead=False, retry_at=hold.until, failures=hold.failures)

    def abandoned(self, target: int, admission: Admission) -> None:
        """A probe that will not report (the worker is stopping): let another alert probe."""
        hold = self._holds.get(target)
        if hold is not None and admission.verdict == "probe":
            hold.probing = False
