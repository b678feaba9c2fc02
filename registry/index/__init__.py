"""The metadata index: repositories, tags, manifests, blob links and upload sessions in SQL; users and
groups beside them (`registry.index.users`, imported only where authentication is on)."""

from registry.index.base import (
    Delivery,
    DeliveryState,
    ManifestPut,
    ManifestRecord,
    MetadataIndex,
    MissingReferences,
    Outbox,
    OutboxEntry,
    StoredManifest,
    UploadBusy,
    Usage,
    UserDirectory,
    UserRecord,
)
from registry.index.sql import SQLIndex

__all__ = [
    "Delivery",
    "DeliveryState",
    "ManifestPut",
    "ManifestRecord",
    "MetadataIndex",
    "MissingReferences",
    "Outbox",
    "OutboxEntry",
    "SQLIndex",
    "StoredManifest",
    "UploadBusy",
    "Usage",
    "UserDirectory",
    "UserRecord",
]
