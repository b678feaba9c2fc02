"""Distribution's `health.storagedriver` check: the store asked every `interval` in the background, and
readiness lost only after `threshold` failures in a row.

Without it /readyz asks the store on each call, which suits a probe every few seconds; with it a
flapping store (an S3 endpoint timing out now and then) does not take a replica out of the load
balancer for one slow answer, and probes cost nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from registry.background import BackgroundLoop
from registry.settings.notifications import StorageDriverCheck

log = logging.getLogger("registry")


class StorageHealth(BackgroundLoop):
    def __init__(self, check: Callable[[], Awaitable[None]], settings: StorageDriverCheck) -> None:
        self._check = check
        self._settings = settings
        self._failures = 0
        self._last_error = ""

    @property
    def failing(self) -> str | None:
        """Why readiness is lost (the last error, with the count), or None while the store is healthy."""
        if self._failures < self._settings.threshold:
            return None
        return f"{self._failures} checks failed in a row, the last: {self._last_error}"

    async def run_once(self) -> None:
        """One check, counted (each interval's; also what the tests drive)."""
        try:
            await asyncio.wait_for(self._check(), self._settings.interval)
        except Exception as error:
            self._last_error = "no answer in time" if isinstance(error, TimeoutError) else f"{error}"
            self._failures += 1
            if self._failures == self._settings.threshold:
                log.warning("storage check: %s; not ready until it passes", self.failing)
            return
        if self._failures >= self._settings.threshold:
            log.info("storage check: the store answers again; ready")
        self._failures = 0

    async def _run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._settings.interval)
