"""An `Event` as one object of Distribution's notification envelope (`{"events": [...]}`, media type
`application/vnd.docker.distribution.events.v1+json`), with the same field names, so receivers written
for Distribution (Harbor's, Jenkins', audit sinks) read ours unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from registry.events.types import Event, Target

MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
# What Distribution calls a blob's media type in its events: it does not know the layer's real one.
BLOB_MEDIA_TYPE = "application/octet-stream"


def envelope_event(event: Event, base_url: str, source: dict[str, str]) -> dict[str, Any]:
    """The envelope's object for `event`; `base_url` (scheme and host, no path) makes the content URL,
    `source` names this replica (`addr`, `instanceID`)."""
    target: dict[str, Any] = {"repository": event.repository}
    media_type = event.media_type or (BLOB_MEDIA_TYPE if event.target is Target.BLOB else "")
    if media_type:
        target["mediaType"] = media_type
    if event.digest:
        target["digest"] = event.digest
    if event.size:
        target["size"] = event.size
        target["length"] = event.size
    if event.from_repository:
        target["fromRepository"] = event.from_repository
    if event.digest and base_url:
        kind = "blobs" if event.target is Target.BLOB else "manifests"
        target["url"] = f"{base_url}/v2/{event.repository}/{kind}/{event.digest}"
    if event.tag:
        target["tag"] = event.tag
    request = {"id": event.request_id, "method": event.method, "useragent": event.user_agent}
    if event.address:
        request["addr"] = event.address
    if event.host:
        request["host"] = event.host
    stamp = datetime.fromtimestamp(event.timestamp, UTC).isoformat(timespec="microseconds")
    found: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": stamp.replace("+00:00", "Z"),
        "action": str(event.action),
        "target": target,
        "request": request,
        "actor": {"name": event.actor} if event.actor else {},
        "source": source,
    }
    return found
