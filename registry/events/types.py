"""What an event says: the fields of Distribution's notification envelope that a registry of ours knows.

One flat, frozen record per event rather than a class per kind: every subscriber (metrics labels,
the webhook envelope, the collector) reads the same few fields, and `target` with `action` is exactly
how Distribution's envelope tells the kinds apart (`target.mediaType`, `action: push|pull|mount|delete`).
Who and where come from the request that caused the event (observe/context.py), so services never pass
them along.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.observe.context import RequestContext, current_request


class Target(enum.StrEnum):
    BLOB = "blob"
    MANIFEST = "manifest"
    TAG = "tag"


class Action(enum.StrEnum):
    PUSH = "push"
    MOUNT = "mount"
    PULL = "pull"
    DELETE = "delete"


def _from_request(read: Callable[[RequestContext], str]) -> property:
    """A field of the event's request, read when asked for; empty for an event outside a request."""
    return property(lambda event: read(event.request) if event.request is not None else "")


@dataclass(frozen=True, slots=True)
class Event:
    target: Target
    action: Action
    repository: str
    digest: str = ""
    media_type: str = ""
    # Bytes of the blob or manifest; for a ranged blob pull, the bytes asked for.
    size: int = 0
    tag: str = ""
    # The repository a blob was mounted from, when the client named it.
    from_repository: str = ""
    # The request in progress when the event happened; None outside one (background jobs). Who and
    # where are read from it only when a subscriber asks: most events (every pull) only ever reach the
    # metrics, which count them by kind, and copying six fields out of the request for each was a
    # tenth of a manifest GET's own time.
    request: RequestContext | None = None
    timestamp: float = field(default_factory=time.time)

    @classmethod
    def now(cls, target: Target, action: Action, repository: str, **fields: str | int) -> Event:
        """An event of the current request."""
        return cls(target, action, repository, request=current_request(), **fields)  # type: ignore[arg-type]

    actor = _from_request(lambda request: request.actor)
    address = _from_request(lambda request: request.address)
    request_id = _from_request(lambda request: request.request_id)
    method = _from_request(lambda request: request.method)
    host = _from_request(lambda request: request.header(b"host"))
    user_agent = _from_request(lambda request: request.header(b"user-agent"))


@dataclass(frozen=True, slots=True)
class CollectionFinished:
    """A garbage collector's run ended: what it reclaimed. No webhook carries it (Distribution's envelope
    has no such event); the metrics subscriber counts it. The collector (registry/lifecycle/) emits it
    through the same dispatcher as the services' events."""

    blobs: int
    bytes: int
    seconds: float
    timestamp: float = field(default_factory=time.time)


# What a dispatcher carries.
AnyEvent = Event | CollectionFinished
