"""What delivery tells others as it goes: each alert's outcome, and targets that die or recover.

The worker and the recorder call one `DeliveryObserver`; the service gives them its metrics
and its meta-alerts (service/operations/meta_alerts.py) together, as
`Observers(metrics, meta_alerts)`.
Every call is cheap and returns at once: anything slow (telling a target's owner) is queued by
the observer, never awaited by delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.store import ClaimedDelivery


class DeliveryObserver(Protocol):
    def alerts_sent(self, alerts: Sequence[ClaimedDelivery], send_s: float) -> None:
        """One send (an alert, or a digest of several) was taken after `send_s` seconds."""

    def alerts_failed(self, alerts: Sequence[ClaimedDelivery], send_s: float, dead: bool) -> None:
        """One send failed; `dead` when it was the last attempt (its target dies with it)."""

    def target_dead(self, target_id: int, error: str, also_dead: int) -> None:
        """The ledger now says the target is dead: `also_dead` waiting alerts died with it."""

    def target_recovered(self, target_id: int) -> None:
        """A target that was failing took an alert again."""


class Observers:
    """Several observers as one, called in order."""

    def __init__(self, *observers: DeliveryObserver) -> None:
        self.observers = observers

    def alerts_sent(self, alerts: Sequence[ClaimedDelivery], send_s: float) -> None:
        for observer in self.observers:
            observer.alerts_sent(alerts, send_s)

    def alerts_failed(self, alerts: Sequence[ClaimedDelivery], send_s: float, dead: bool) -> None:
        for observer in self.observers:
            observer.alerts_failed(alerts, send_s, dead)

    def target_dead(self, target_id: int, error: str, also_dead: int) -> None:
        for observer in self.observers:
            observer.target_dead(target_id, error, also_dead)

    def target_recovered(self, target_id: int) -> None:
        for observer in self.observers:
            observer.target_recovered(target_id)
