"""Protocol helpers: push blobs and manifests the way clients do, over plain HTTP."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201, response.text
    return digest


def image_manifest(
    client: httpx.Client,
    repo: str,
    layers: list[bytes] | None = None,
    config: bytes | None = None,
    **extra: Any,
) -> bytes:
    """Push a config and layers, and return the bytes of an OCI manifest referencing them."""
    config = config if config is not None else json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layers = layers if layers is not None else [b"layer-" + repo.encode()]
    push_blob(client, repo, config)
    for layer in layers:
        push_blob(client, repo, layer)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config, OCI_CONFIG),
        "layers": [descriptor(layer, OCI_LAYER) for layer in layers],
        **extra,
    }
    return json.dumps(document, indent="\t").encode()


def put_manifest(
    client: httpx.Client, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
) -> httpx.Response:
    return client.put(f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type})


def errors(response: httpx.Response) -> list[str]:
    """The spec error codes in a response body (and a check that the body has the spec's shape)."""
    body = response.json()
    for entry in body["errors"]:
        assert set(entry) >= {"code", "message", "detail"}, entry
    return [entry["code"] for entry in body["errors"]]
