"""Helpers for the lifecycle tests: rules as the environment gives them to a server or a command, pushes
of small images, and the server's own index opened in the test for what only time can show."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from registry.config import Settings
from registry.index import SQLIndex
from tests.e2e.test_skopeo import busybox, skopeo  # noqa: F401  (fixtures, shared with tests/e2e)
from tests.support.oci import image_manifest, put_manifest, sha256
from tests.support.server import RegistryProcess


def rules(**sections: list[dict[str, Any]]) -> dict[str, str]:
    """`REGISTRY_<SECTION>_RULES` variables: rules(quotas=[{"repositories": "a/*", "limit": 10}])."""
    return {f"REGISTRY_{name.upper()}_RULES": json.dumps(value) for name, value in sections.items()}


def push_image(
    client: httpx.Client, repo: str, reference: str, name: str, layers: list[bytes] | None = None
) -> str:
    """Push an image whose config names it (so each name is a manifest of its own); return its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode()
    body = image_manifest(
        client, repo, layers=layers if layers is not None else [b"layer of " + name.encode()], config=config
    )
    response = put_manifest(client, repo, reference, body)
    assert response.status_code == 201, response.text
    return sha256(body)


@asynccontextmanager
async def opened_index(server: RegistryProcess) -> AsyncIterator[SQLIndex]:
    """The index the server uses, opened here beside it."""
    index = SQLIndex(
        Settings()
        .with_overrides({"data_dir": server.data_dir, "database.url": server.database_url})
        .index_url
    )
    await index.open()
    try:
        yield index
    finally:
        await index.close()
