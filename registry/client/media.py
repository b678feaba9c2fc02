"""Media types of configs and layers, and the Accept header a puller sends.

Manifest and index types live in `registry.types` (the server needs them too); the ones here only matter
to a client that reads configs and applies layers, or writes an image manifest of its own (build, import,
load).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Final

from registry.types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"

OCI_LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"

MANIFEST_ACCEPT: Final = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"


def layer_type_for(head: bytes) -> str:
    """The OCI layer media type of a layer file, from its first bytes (archives carry no media type)."""
    if head.startswith(GZIP_MAGIC):
        return OCI_LAYER_GZIP
    if head.startswith(ZSTD_MAGIC):
        return OCI_LAYER_ZSTD
    return OCI_LAYER_TAR


def blob_descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    """What a manifest says of one blob it references (OCI image spec, "Descriptors")."""
    return {"mediaType": media_type, "digest": digest, "size": size}


def image_manifest(config: bytes, layers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The OCI image manifest of a config and its layers' descriptors, for an image made locally.

    A document, not bytes: each caller keeps the serialisation it always had, so the manifest digests
    of images it made before (and build cache keys derived from them) stay the same.
    """
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": blob_descriptor(OCI_CONFIG, "sha256:" + hashlib.sha256(config).hexdigest(), len(config)),
        "layers": list(layers),
    }
