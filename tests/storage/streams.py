"""Running a store's coroutines from a test, and request bodies as a server receives them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

T = TypeVar("T")
MiB = 1024 * 1024


def run(coroutine: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await coroutine

    return asyncio.run(wrapped())


async def stream(data: bytes, piece: int = 64 * 1024, fail_after: int | None = None) -> AsyncIterator[bytes]:
    """A request body in chunks as a server receives them; `fail_after` bytes in, the client vanishes."""
    for offset in range(0, len(data), piece):
        if fail_after is not None and offset >= fail_after:
            raise ConnectionResetError("client went away")
        yield data[offset : offset + piece]
