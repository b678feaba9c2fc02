"""The delivery worker: a background task in each server process that sends the outbox's events.

Each endpoint has a sender of its own (a slow receiver delays only its own events), whose rounds claim
the oldest owed event of each repository (outbox claims keep two replicas from sending the same one,
and event n+1 of a repository from leaving before n), post each in an envelope of its own, and forget
it on a 2xx/3xx answer. Anything else is tried again after a wait
that doubles from the endpoint's `backoff` up to MAX_BACKOFF: at least once, and in order. After
`threshold` failures in a row an endpoint is marked failing (a log line and a gauge), as Distribution
does, and marked healthy again by its next success. Requests never wait for any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

import httpx

from registry.background import BackgroundLoop
from registry.events.envelope import MEDIA_TYPE
from registry.events.outbox import Notifier, instance_name
from registry.index import Delivery, Outbox
from registry.settings.notifications import NotificationEndpoint

log = logging.getLogger("registry.events")
MAX_BACKOFF = 300.0
# Seconds between looks at the outbox when nothing woke the worker (other replicas' events, retries).
POLL_INTERVAL = 1.0
# Repositories whose next event one round sends to one endpoint, at once.
CLAIM_BATCH = 32
# Seconds between looks at the backlogs (for the log line when one fills).
BACKLOG_CHECK = 10.0
# A claim outlives the request's timeout by this much; a worker that died holding it is then replaced.
LEASE_MARGIN = 10.0


class DeliveryMetrics(Protocol):
    def sent(self, endpoint: str) -> None: ...

    def failed(self, endpoint: str) -> None: ...

    def failing(self, endpoint: str, failing: bool) -> None: ...


def retry_delay(endpoint: NotificationEndpoint, attempts: int) -> float:
    """The wait after the `attempts`-th failure (1 for the first): backoff, doubled each time, capped."""
    return min(endpoint.backoff * 2 ** min(attempts - 1, 32), max(MAX_BACKOFF, endpoint.backoff))


class DeliveryWorker(BackgroundLoop):
    def __init__(self, outbox: Outbox, notifier: Notifier, metrics: DeliveryMetrics | None = None) -> None:
        self._outbox = outbox
        self._notifier = notifier
        self._metrics = metrics
        self._claimant = instance_name()
        self._failures = {endpoint.name: 0 for endpoint in notifier.endpoints}
        self._full: set[str] = set()

    async def stop(self) -> None:
        """Stop sending, then store the pull events still in memory (a clean stop loses none)."""
        await super().stop()
        with contextlib.suppress(Exception):
            await self._outbox.record(self._notifier.take_pulls())

    async def _run(self) -> None:
        """One sender per endpoint, so a slow receiver holds up only its own events; this task stores
        the pulls kept in memory each second (a change stores them sooner) and watches the backlogs."""
        async with httpx.AsyncClient(follow_redirects=False) as client:
            senders = [
                asyncio.create_task(self._sender(client, endpoint)) for endpoint in self._notifier.endpoints
            ]
            try:
                checked = float("-inf")
                while True:
                    try:
                        await self._outbox.record(self._notifier.take_pulls())
                        if time.monotonic() - checked >= BACKLOG_CHECK:
                            checked = time.monotonic()
                            await self._check_backlogs()
                    except Exception as error:
                        self._round_failed(error)
                    await asyncio.sleep(POLL_INTERVAL)
            finally:
                for sender in senders:
                    sender.cancel()
                await asyncio.gather(*senders, return_exceptions=True)

    async def _sender(self, client: httpx.AsyncClient, endpoint: NotificationEndpoint) -> None:
        idle = min(POLL_INTERVAL, endpoint.backoff)
        while True:
            changed = self._notifier.changed()
            try:
                busy = await self._round(client, endpoint)
            except Exception as error:
                self._round_failed(error)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), idle)

    @staticmethod
    def _round_failed(error: Exception) -> None:
        # The index unreachable, say: one line, and the next round.
        log.warning(
            "notifications: delivery round failed (%s: %s); trying again", type(error).__name__, error
        )

    async def _round(self, client: httpx.AsyncClient, endpoint: NotificationEndpoint) -> bool:
        """Send what is due to one endpoint; whether there was anything."""
        lease = endpoint.timeout + LEASE_MARGIN
        claimed = await self._outbox.claim(endpoint.name, self._claimant, lease, CLAIM_BATCH)
        await asyncio.gather(*(self._send(client, endpoint, delivery) for delivery in claimed))
        return bool(claimed)

    async def _send(
        self, client: httpx.AsyncClient, endpoint: NotificationEndpoint, delivery: Delivery
    ) -> None:
        headers = [(name, value) for name, values in endpoint.headers.items() for value in values]
        headers.append(("Content-Type", MEDIA_TYPE))
        body = b'{"events":[' + delivery.payload.encode() + b"]}"
        try:
            answer = await client.post(endpoint.url, content=body, headers=headers, timeout=endpoint.timeout)
            error = None if answer.status_code < 400 else f"HTTP {answer.status_code}"
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
        if error is None:
            await self._outbox.delivered(delivery, self._claimant)
            self._succeeded(endpoint)
        else:
            delay = retry_delay(endpoint, delivery.attempts + 1)
            await self._outbox.postpone(delivery, self._claimant, error, delay)
            self._failed(endpoint, error)

    def _succeeded(self, endpoint: NotificationEndpoint) -> None:
        if self._metrics is not None:
            self._metrics.sent(endpoint.name)
        if self._failures[endpoint.name] >= endpoint.threshold:
            log.info("notifications: endpoint %s answers again", endpoint.name)
            if self._metrics is not None:
                self._metrics.failing(endpoint.name, False)
        self._failures[endpoint.name] = 0

    def _failed(self, endpoint: NotificationEndpoint, error: str) -> None:
        if self._metrics is not None:
            self._metrics.failed(endpoint.name)
        self._failures[endpoint.name] += 1
        if self._failures[endpoint.name] == endpoint.threshold:
            log.warning(
                "notifications: endpoint %s failing (%d failures in a row, last: %s): events wait for it",
                endpoint.name,
                endpoint.threshold,
                error,
            )
            if self._metrics is not None:
                self._metrics.failing(endpoint.name, True)

    async def _check_backlogs(self) -> None:
        counts = await self._outbox.counts()
        for endpoint in self._notifier.endpoints:
            pending = counts.get((endpoint.name, "pending"), 0)
            if pending >= endpoint.backlog and endpoint.name not in self._full:
                self._full.add(endpoint.name)
                log.warning(
                    "notifications: endpoint %s has a full backlog (%d events): new events are kept as "
                    "failed; see `registry events list` and retry them once it answers",
                    endpoint.name,
                    pending,
                )
            elif pending < endpoint.backlog:
                self._full.discard(endpoint.name)
