"""Registry operations between the HTTP handlers and the index and store: where the rules live."""

from registry.services.blobs import BlobService
from registry.services.manifests import ManifestService

__all__ = ["BlobService", "ManifestService"]
