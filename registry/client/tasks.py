"""Concurrent transfers with a limit, failing like a loop would: on the first error, cancel the rest and
raise that error itself (a TaskGroup raises an ExceptionGroup, which no caller wants to unpack).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any


async def run_all(jobs: Iterable[Coroutine[Any, Any, Any]], limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def limited(job: Coroutine[Any, Any, Any]) -> None:
        async with semaphore:
            await job

    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(limited(job))
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
