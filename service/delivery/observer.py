"""What delivery tells others as it goes: each alert's outcome, and targets that die or recover.

The worker and the recorder call one `DeliveryObserver`; the service gives them its metrics
and its meta-alerts (service/meta_alerts.py) together, as `Observers(metrics, meta_alerts)`.
Every call is cheap and returns at once: anything slow (telling a target's owner) is queued by
the observer, never awaited by delivery.
"""

from __future__ import annotations

from typing import Protocol

from service.store import ClaimedDelivery


class DeliveryObserver(Protocol):
    def alert_sent(self, alert: ClaimedDelivery, send_s: float) -> None:
        """The target took the alert after `send_s` seconds."""

    def alert_failed(self, alert: ClaimedDelivery, send_s: float, dead: bool) -> None:
        """A send failed; `dead` when it was the last attempt (its target dies with it)."""

    def target_dead(self, target_id: int, error: str, also_dead: int) -> None:
        """The ledger now says the target is dead: `also_dead` waiting alerts died with it."""

    def target_recovered(self, target_id: int) -> None:
        """A target that was failing took an alert again."""


class Observers:
    """Several observers as one, called in order."""

    def __init__(self, *observers: DeliveryObserver) -> None:
        self.observers = observers

    def alert_sent(self, alert: ClaimedDelivery, send_s: float) -> None:
        for observer in self.observers:
            observer.alert_sent(alert, send_s)

    def alert_failed(self, alert: ClaimedDelivery, send_s: float, dead: bool) -> None:
        for observer in self.observers:
            observer.alert_failed(alert, send_s, dead)

    def target_dead(self, target_id: int, error: str, also_dead: int) -> None:
        for observer in self.observers:
            observer.target_dead(target_id, error, also_dead)

    def target_recovered(self, target_id: int) -> None:
        for observer in self.observers:
            observer.target_recovered(target_id)
