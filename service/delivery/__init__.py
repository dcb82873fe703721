"""Delivery: from due ledger rows to messages that arrived, in stages (see worker.py)."""

from __future__ import annotations

from service.delivery.breaker import Admission, TargetBreaker, Verdict
from service.delivery.render import Message, Renderer, TemplateError, render_test
from service.delivery.send.fit import NotifyArgs, fit
from service.delivery.send.notifier import AppriseNotifier, DeliveryFailed, Notifier
from service.delivery.worker import DeliveryWorker, Recorder, backoff

__all__ = [
    "Admission",
    "AppriseNotifier",
    "DeliveryFailed",
    "DeliveryWorker",
    "Message",
    "Notifier",
    "NotifyArgs",
    "Recorder",
    "Renderer",
    "TargetBreaker",
    "TemplateError",
    "Verdict",
    "backoff",
    "fit",
    "render_test",
]
