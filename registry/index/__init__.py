"""The metadata index: repositories, tags, manifests, blob links and upload sessions in SQL; users and
groups beside them."""

from registry.index.base import (
    ManifestPut,
    ManifestRecord,
    MetadataIndex,
    MissingReferences,
    UserDirectory,
    UserRecord,
)
from registry.index.sql import SQLIndex
from registry.index.users import SQLUserDirectory

__all__ = [
    "ManifestPut",
    "ManifestRecord",
    "MetadataIndex",
    "MissingReferences",
    "SQLIndex",
    "SQLUserDirectory",
    "UserDirectory",
    "UserRecord",
]
