"""The metadata index: repositories, tags, manifests, blob links and upload sessions in SQL."""

from registry.index.base import ManifestPut, ManifestRecord, MetadataIndex, MissingReferences
from registry.index.sql import SQLIndex

__all__ = ["ManifestPut", "ManifestRecord", "MetadataIndex", "MissingReferences", "SQLIndex"]
