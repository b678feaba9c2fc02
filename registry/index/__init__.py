"""The metadata index: repositories, tags, manifests, blob links and upload sessions in SQL; users and
groups beside them (`registry.index.users`, imported only where authentication is on)."""

from registry.index.base import (
    ManifestPut,
    ManifestRecord,
    ManifestState,
    MetadataIndex,
    MissingReferences,
    PutGuard,
    Quota,
    QuotaExceeded,
    RepositoryUsage,
    StoredManifest,
    TagFixed,
    TagState,
    UploadBusy,
    Usage,
    UsageReport,
    UserDirectory,
    UserRecord,
)
from registry.index.sql import SQLIndex

__all__ = [
    "ManifestPut",
    "ManifestRecord",
    "ManifestState",
    "MetadataIndex",
    "MissingReferences",
    "PutGuard",
    "Quota",
    "QuotaExceeded",
    "RepositoryUsage",
    "SQLIndex",
    "StoredManifest",
    "TagFixed",
    "TagState",
    "UploadBusy",
    "Usage",
    "UsageReport",
    "UserDirectory",
    "UserRecord",
]
