"""One dispatcher per process: services emit, subscribers receive each event in subscription order.

Delivery is synchronous and in-process on purpose: today's subscriber (metrics) costs a counter
increment, and a slow subscriber must not be hidden behind a queue that can grow without bound. The
webhook outbox will not be a plain subscriber: it has to store its row in the same transaction as the
change, so services will hand the index the very `Event` they emit here, along with the write it
reports. Delivery to remote endpoints then happens from the outbox, never from this call.

A subscriber that raises is logged and skipped: the change it reports has already happened, so the
request that made it must not fail because of a bookkeeping error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from registry.events.types import Event

log = logging.getLogger("registry.events")

Subscriber = Callable[[Event], None]


class Dispatcher:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s %s", subscriber, event.target, event.action)
