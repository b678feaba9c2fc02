"""One dispatcher per process: services emit, subscribers receive each event in subscription order.

Delivery is synchronous and in-process on purpose: today's subscriber (metrics) costs a counter
increment, and a slow subscriber must not be hidden behind a queue that can grow without bound. The
webhook outbox is not a plain subscriber: it has to store its row in the same transaction as the
change, so services ask `outbox` for the entries of the events they are about to emit and hand them
to the index with the write they report. Delivery to remote endpoints then happens from the outbox
(delivery.py), never from this call.

A subscriber that raises is logged and skipped: the change it reports has already happened, so the
request that made it must not fail because of a bookkeeping error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from registry.events.outbox import Notifier
from registry.events.types import AnyEvent, Event
from registry.index import OutboxEntry

log = logging.getLogger("registry.events")

Subscriber = Callable[[AnyEvent], None]


class Dispatcher:
    def __init__(self, notifier: Notifier | None = None) -> None:
        self._subscribers: list[Subscriber] = []
        # None without notification endpoints: then no event is stored at all.
        self.notifier = notifier
        if notifier is not None:
            self.subscribe(notifier)

    def outbox(self, events: Iterable[Event]) -> tuple[OutboxEntry, ...]:
        """The outbox entries the index stores with the change these events report, after the pulls
        this process has kept so far: stored together, they keep the order they happened in."""
        if self.notifier is None:
            return ()
        return (*self.notifier.take_pulls(), *self.notifier.entries(events))

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: AnyEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", subscriber, event)
