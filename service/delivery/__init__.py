"""Delivery: from due ledger rows to messages that arrived, in stages (see worker.py)."""

from __future__ import annotations

from service.delivery.breaker import Admission, TargetBreaker, Verdict
from service.delivery.notifier import AppriseNotifier, DeliveryFailed, Notifier
from service.delivery.render import Message, render, render_digest, render_test
from service.delivery.worker import DeliveryWorker, Recorder, backoff

__all__ = [
    "Admission",
    "AppriseNotifier",
    "DeliveryFailed",
    "DeliveryWorker",
    "Message",
    "Notifier",
    "Recorder",
    "TargetBreaker",
    "Verdict",
    "backoff",
    "render",
    "render_digest",
    "render_test",
]
