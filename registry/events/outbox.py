"""Events into outbox entries: which endpoints want each one, and its envelope object as JSON text.

Changes (pushes, mounts, deletes) get their entries from `entries`, which the service hands the index
with the change itself, so the event is stored in the change's transaction or not at all. Pulls change
nothing, so they are not worth a write on the request's path: this subscriber keeps them in memory and
they are stored with this process's next change, or by the delivery worker within a second, whichever
comes first (so a pull and the delete after it reach an endpoint in that order). A crash loses the
pulls not yet stored (at most a second's worth), and so does a change that fails after taking them;
we accept that for pulls: Distribution keeps every event in memory only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable

from registry.events.envelope import BLOB_MEDIA_TYPE, envelope_event
from registry.events.types import Action, AnyEvent, Event, Target
from registry.index import OutboxEntry
from registry.settings.notifications import NotificationEndpoint

log = logging.getLogger("registry.events")
# Pull events held between two flushes; beyond it they are dropped and counted, never slowing a GET.
PULL_BUFFER = 10_000


class Notifier:
    def __init__(self, endpoints: Iterable[NotificationEndpoint], external_url: str, scheme: str, port: int):
        self.endpoints = tuple(endpoint for endpoint in endpoints if not endpoint.disabled)
        self._external_url = external_url.rstrip("/")
        self._scheme = scheme
        self._source = {"addr": f"{socket.gethostname()}:{port}", "instanceID": str(uuid.uuid4())}
        self._pulls: list[OutboxEntry] = []
        self.dropped_pulls = 0
        # Set (and replaced) on every event, so this process's senders send at once instead of at their
        # next poll: each takes the current one before a round and waits on it after, missing none.
        self._changed = asyncio.Event()

    def entries(self, events: Iterable[Event]) -> tuple[OutboxEntry, ...]:
        """The outbox entries of `events`: one per event some endpoint wants."""
        found = []
        for event in events:
            wanted = tuple(
                (endpoint.name, endpoint.backlog) for endpoint in self.endpoints if _wants(endpoint, event)
            )
            if wanted:
                base = self._external_url or (f"{self._scheme}://{event.host}" if event.host else "")
                payload = json.dumps(envelope_event(event, base, self._source), separators=(",", ":"))
                found.append(OutboxEntry(event.repository, payload, wanted))
        return tuple(found)

    def changed(self) -> asyncio.Event:
        """An event set at the next change or pull."""
        return self._changed

    def __call__(self, event: AnyEvent) -> None:
        """The dispatcher's subscriber: wakes the senders, and keeps pulls for them to store."""
        if not isinstance(event, Event):
            return
        self._changed.set()
        self._changed = asyncio.Event()
        if event.action is not Action.PULL:
            return
        if len(self._pulls) >= PULL_BUFFER:
            self.dropped_pulls += 1
            if self.dropped_pulls == 1:
                log.warning("notifications: pull events arrive faster than they are stored: dropping some")
            return
        self._pulls.extend(self.entries((event,)))

    def take_pulls(self) -> list[OutboxEntry]:
        pulls, self._pulls = self._pulls, []
        return pulls


def _wants(endpoint: NotificationEndpoint, event: Event) -> bool:
    media_type = event.media_type or (BLOB_MEDIA_TYPE if event.target is Target.BLOB else "")
    ignored = (*endpoint.ignoredmediatypes, *endpoint.ignore.mediatypes)
    return str(event.action) not in endpoint.ignore.actions and not (media_type and media_type in ignored)


def instance_name() -> str:
    """Who holds a claim: this host and process, as an operator reads it in `registry events`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
