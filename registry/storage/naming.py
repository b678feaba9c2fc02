"""Names both stores give blobs beyond `blobs/<algorithm>/<xx>/<hex>`: reading one back, quarantining one.

Shared so the filesystem and S3 layouts cannot drift apart on these rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

from registry.errors import RegistryError
from registry.types import Digest


def parse_blob_name(algorithm: str, shard: str, name: str) -> Digest | None:
    """The digest a listed `blobs/<algorithm>/<shard>/<name>` stands for; None for a stray entry."""
    try:
        digest = Digest.parse(f"{algorithm}:{name}")
    except RegistryError:
        return None
    return digest if digest.hex[:2] == shard else None


def quarantine_name(digest: Digest) -> str:
    """`quarantine/<algorithm>/<hex>.<UTC time>`: sortable, and a blob quarantined twice keeps both."""
    return f"quarantine/{digest.algorithm}/{digest.hex}.{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"
