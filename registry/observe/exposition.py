"""What /metrics answers: every worker's metrics added up, and the storage gauges from the index.

With several worker processes each keeps its own counters; a scrape reaches one worker, which adds up
the files all of them write (prometheus-client's multiprocess mode, directory set by `registry serve`).
The storage gauges (bytes and blobs the index knows, open upload sessions) are aggregate queries, so
they are asked at most once per USAGE_TTL seconds per process, and only when scraped: never on a
request's path. `metrics_htpasswd` restricts scrapes to its users (bcrypt, checked off the event loop).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from registry.auth.passwords import Htpasswd, decoy_hash, verify_password
from registry.index import MetadataIndex, Usage

log = logging.getLogger("registry")
USAGE_TTL = 30.0


class _Scrape:
    """One scrape's metrics: the recorded ones, then the storage gauges."""

    def __init__(
        self, recorded: Collector, usage: Usage | None, deliveries: dict[tuple[str, str], int] | None
    ) -> None:
        self.recorded = recorded
        self.usage = usage
        self.deliveries = deliveries

    def collect(self) -> Iterator[Metric]:
        yield from self.recorded.collect()
        if self.deliveries is not None:
            owed = GaugeMetricFamily(
                "registry_notifications_backlog",
                "Events owed to each webhook endpoint: pending (being sent) or failed (refused by a full "
                "backlog, waiting for `registry events retry`)",
                labels=["endpoint", "state"],
            )
            for (endpoint, state), count in sorted(self.deliveries.items()):
                owed.add_metric([endpoint, state], count)
            yield owed
        if self.usage is None:
            return
        usage = self.usage
        for name, documentation, value in (
            ("registry_storage_blob_bytes", "Bytes of the blobs in the index, each once", usage.blob_bytes),
            ("registry_storage_blobs", "Blobs the index knows", usage.blobs),
            ("registry_uploads_in_progress", "Open upload sessions", usage.uploads),
        ):
            yield GaugeMetricFamily(name, documentation, value=value)


class Exposition:
    def __init__(self, index: MetadataIndex, htpasswd: str = "") -> None:
        self._index = index
        self._htpasswd = Htpasswd(Path(htpasswd)) if htpasswd else None
        if self._htpasswd is not None:
            self._htpasswd.lookup("")  # an unreadable file should stop the start, not the first scrape
        self._usage: Usage | None = None
        self._deliveries: dict[tuple[str, str], int] | None = None
        self._usage_at = float("-inf")
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self._recorded: Collector = MultiProcessCollector(None, directory) if directory else REGISTRY

    async def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        await self._storage_usage()
        scrape = _Scrape(self._recorded, self._usage, self._deliveries)
        return generate_latest(scrape), CONTENT_TYPE_LATEST  # type: ignore[arg-type]

    async def _storage_usage(self) -> None:
        """The gauges read from the index (storage totals, webhook backlogs), at most every USAGE_TTL."""
        if time.monotonic() - self._usage_at >= USAGE_TTL:
            try:
                self._usage = await self._index.usage()
                self._deliveries = await self._index.outbox.counts()
            except Exception as error:
                # The scrape still answers with every other metric; /readyz says what is wrong.
                log.warning("metrics: storage usage unavailable: %s", error)
                self._usage = self._deliveries = None
            self._usage_at = time.monotonic()

    async def allows(self, authorization: str | None) -> bool:
        """Whether a scrape's `Authorization` header passes `metrics_htpasswd` (always, without one)."""
        if self._htpasswd is None:
            return True
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        entry = self._htpasswd.lookup(name)
        # A missing user costs as much as a wrong password, as for logins.
        matches = await asyncio.to_thread(verify_password, password, entry or decoy_hash())
        return matches and entry is not None
