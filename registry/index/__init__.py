"""The metadata index: repositories, tags, manifests, blob links and upload sessions in SQL; users and
groups beside them (`registry.index.users`, imported only where authentication is on)."""

from registry.index.base import (
    ManifestPut,
    ManifestRecord,
    MetadataIndex,
    MissingReferences,
    StoredManifest,
    UploadBusy,
    Usage,
    UserDirectory,
    UserRecord,
)
from registry.index.sql import SQLIndex

__all__ = [
    "ManifestPut",
    "ManifestRecord",
    "MetadataIndex",
    "MissingReferences",
    "SQLIndex",
    "StoredManifest",
    "UploadBusy",
    "Usage",
    "UserDirectory",
    "UserRecord",
]
