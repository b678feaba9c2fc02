"""Named points where the collector and the writers it races with may be held, for deterministic tests.

A pause is awaited at each point with the point's name and the digest concerned; production code passes
`no_pause`. Race tests pass one that blocks on an event until the other side has reached its own point,
so each interleaving is forced instead of hoped for with sleeps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Pause = Callable[[str, str], Awaitable[None]]

# The collector, before the transaction that re-checks and forgets a manifest, or a batch of blobs (the
# digest is the batch's first).
FORGET_MANIFEST = "forget-manifest"
FORGET_BLOB = "forget-blob"
# The collector, between its index passes and its store passes (orphans, then byte deletes), outside
# any transaction; the digest is "".
STORE_PASSES = "store-passes"
# The collector, holding a batch of queued deletes (their rows locked), before it deletes each one's bytes.
DELETE_BYTES = "delete-bytes"
# A writer, holding the digest (`hold_bytes` committed), before it publishes the bytes in the store.
PUBLISH = "publish"
# A writer, its bytes published, before it links them in the index.
LINK = "link"


async def no_pause(point: str, digest: str) -> None:
    """Production: no point waits."""
