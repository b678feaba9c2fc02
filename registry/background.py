"""A task a server process runs beside its requests from start to stop (webhook delivery, store checks)."""

from __future__ import annotations

import asyncio


class BackgroundLoop:
    """Subclasses write `_run`; the app's lifespan calls `start` once the loop runs and `stop` at the end."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        raise NotImplementedError
