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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from registry.auth.passwords import Htpasswd, decoy_hash, verify_password
from registry.index import MetadataIndex, Usage
from registry.observe.batch import PENDING

log = logging.getLogger("registry")
USAGE_TTL = 30.0


class _Scrape:
    """One scrape's metrics: the recorded ones, then the gauges read at scrape time."""

    def __init__(self, recorded: Collector, gauges: list[Metric]) -> None:
        self.recorded = recorded
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        yield from self.recorded.collect()
        yield from self.gauges


def _usage_gauges(usage: Usage) -> list[Metric]:
    return [
        GaugeMetricFamily(name, documentation, value=value)
        for name, documentation, value in (
            ("registry_storage_blob_bytes", "Bytes of the blobs in the index, each once", usage.blob_bytes),
            ("registry_storage_blobs", "Blobs the index knows", usage.blobs),
            ("registry_uploads_in_progress", "Open upload sessions", usage.uploads),
        )
    ]


def _backlog_gauge(endpoints: Sequence[str], deliveries: dict[tuple[str, str], int]) -> Metric:
    owed = GaugeMetricFamily(
        "registry_notifications_backlog",
        "Events owed to each webhook endpoint: pending (being sent) or failed (refused by a full backlog, "
        "waiting for `registry events retry`)",
        labels=["endpoint", "state"],
    )
    for endpoint in endpoints:
        for state in ("pending", "failed"):
            owed.add_metric([endpoint, state], deliveries.get((endpoint, state), 0))
    return owed


def _readiness_gauges(failing: Mapping[str, str | None]) -> list[Metric]:
    """What /readyz would answer, for alerts: Prometheus scrapes /metrics, not the probes."""
    checks = GaugeMetricFamily(
        "registry_check_up", "1 while a readiness check (index, storage) passes", labels=["check"]
    )
    for name, reason in failing.items():
        checks.add_metric([name], 0 if reason else 1)
    ready = all(reason is None for reason in failing.values())
    return [GaugeMetricFamily("registry_ready", "1 while /readyz answers 200", value=int(ready)), checks]


def _disk_gauges(root: Path) -> list[Metric]:
    """Room left on the filesystem store's disk (the disk alert's figure)."""
    try:
        stats = os.statvfs(root)
    except OSError:
        return []
    return [
        GaugeMetricFamily(
            "registry_storage_filesystem_free_bytes",
            "Bytes free for the registry on the filesystem store's disk",
            value=stats.f_bavail * stats.f_frsize,
        ),
        GaugeMetricFamily(
            "registry_storage_filesystem_size_bytes",
            "Size of the filesystem store's disk",
            value=stats.f_blocks * stats.f_frsize,
        ),
    ]


class Exposition:
    def __init__(
        self,
        index: MetadataIndex,
        htpasswd: str = "",
        disk: Path | None = None,
        endpoints: Sequence[str] = (),
    ) -> None:
        self._index = index
        # The webhook endpoints whose backlogs are shown (0 when empty, so alerts see a value).
        self._endpoints = tuple(endpoints)
        # The filesystem store's root; None for S3.
        self._disk = disk
        self._htpasswd = Htpasswd(Path(htpasswd)) if htpasswd else None
        if self._htpasswd is not None:
            self._htpasswd.lookup("")  # an unreadable file should stop the start, not the first scrape
        self._usage: Usage | None = None
        self._deliveries: dict[tuple[str, str], int] | None = None
        self._usage_at = float("-inf")
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self._recorded: Collector = MultiProcessCollector(None, directory) if directory else REGISTRY

    async def render(self, failing: Mapping[str, str | None]) -> tuple[bytes, str]:
        """The exposition text and its content type; `failing` is what each readiness check found."""
        PENDING.flush()  # this process's counts are exact; other workers' at most batch.DELAY late
        await self._storage_usage()
        gauges = _readiness_gauges(failing)
        if self._usage is not None:
            gauges += _usage_gauges(self._usage)
        if self._deliveries is not None:
            gauges.append(_backlog_gauge(self._endpoints, self._deliveries))
        if self._disk is not None:
            gauges += _disk_gauges(self._disk)
        scrape = _Scrape(self._recorded, gauges)
        return generate_latest(scrape), CONTENT_TYPE_LATEST  # type: ignore[arg-type]

    async def _storage_usage(self) -> None:
        """The gauges read from the index (storage totals, webhook backlogs), at most every USAGE_TTL."""
        if time.monotonic() - self._usage_at >= USAGE_TTL:
            try:
                self._usage = await self._index.usage()
                self._deliveries = await self._index.outbox.counts() if self._endpoints else None
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
