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
from dataclasses import dataclass, field

from registry.observe.context import current_request


class Target(enum.StrEnum):
    BLOB = "blob"
    MANIFEST = "manifest"
    TAG = "tag"


class Action(enum.StrEnum):
    PUSH = "push"
    MOUNT = "mount"
    PULL = "pull"
    DELETE = "delete"


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
    # Filled from the request in progress; empty outside one (background jobs).
    actor: str = ""
    address: str = ""
    request_id: str = ""
    method: str = ""
    host: str = ""
    user_agent: str = ""
    timestamp: float = field(default_factory=time.time)

    @classmethod
    def now(cls, target: Target, action: Action, repository: str, **fields: str | int) -> Event:
        """An event stamped with the current request's actor, address and request id."""
        request = current_request()
        if request is not None:
            fields = {
                "actor": request.actor,
                "address": request.address,
                "request_id": request.request_id,
                "method": request.method,
                "host": request.header(b"host"),
                "user_agent": request.header(b"user-agent"),
                **fields,
            }
        return cls(target, action, repository, **fields)  # type: ignore[arg-type]


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
