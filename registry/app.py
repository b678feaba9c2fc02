"""Builds the ASGI application from settings: store, index, services, routes and background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Router

from registry.api.common import http_error, registry_error
from registry.api.failures import FailureBoundary
from registry.api.gate import ExceptionHandler, Gate
from registry.api.kept import KeptAnswers
from registry.api.routes import ROUTES
from registry.config import Settings
from registry.errors import RegistryError
from registry.events import Dispatcher
from registry.events.outbox import Notifier
from registry.index import MetadataIndex, SQLIndex
from registry.lifecycle.guards import Guards
from registry.lifecycle.scheduler import start_background_gc
from registry.limits.rate import RateLimit
from registry.observe.storagecheck import StorageHealth
from registry.scrub.background import start_background_scrub
from registry.services import BlobService, ManifestService
from registry.services.repositories import RepositoryService
from registry.storage import BlobStore, FilesystemStore

if TYPE_CHECKING:
    from registry.auth.authority import Authority
    from registry.events.delivery import DeliveryWorker
    from registry.index.base import UserDirectory
    from registry.observe.exposition import Exposition

log = logging.getLogger("registry")
MAX_PURGE_INTERVAL = 600.0


@dataclass
class Registry:
    """Everything a request handler may use, built once per process."""

    settings: Settings
    index: MetadataIndex
    store: BlobStore
    events: Dispatcher
    blobs: BlobService
    manifests: ManifestService
    repositories: RepositoryService
    # Both None when `auth: none`: then not even their modules are loaded, which keeps each worker
    # process about 10 MiB smaller.
    users: UserDirectory | None
    auth: Authority | None
    # None with `metrics_enabled: false`: then prometheus_client is never loaded.
    exposition: Exposition | None
    # The background store check (`health.storagedriver.enabled`), which /readyz then reads.
    storage_health: StorageHealth | None = None
    # Pulls answered again from memory (registry/api/kept.py); None where each request must be decided
    # on its own: with auth (who may pull) or a rate limit (how often); and with `server.read_cache: 0`.
    kept: KeptAnswers | None = None

    @classmethod
    def build(cls, settings: Settings) -> Registry:
        index = SQLIndex(settings.index_url, settings.server.read_cache_share)
        store: BlobStore
        if settings.storage.kind == "s3":
            # Imported only here: workers on the filesystem store never load boto3.
            from registry.storage.s3 import S3Store

            store = S3Store.from_settings(settings)
        else:
            store = FilesystemStore(settings.blob_root, settings.server.read_cache_share)
        users = auth = None
        if settings.auth.kind != "none":
            from registry.auth.authority import Authority
            from registry.index.users import SQLUserDirectory

            users = SQLUserDirectory(settings.index_url)
            auth = Authority.build(settings, users)
        notifier = None
        if settings.notifications.endpoints:
            notifier = Notifier(
                settings.notifications.endpoints, settings.http.host, settings.scheme, settings.port
            )
        events = Dispatcher(notifier)
        guards = Guards(index, settings.immutable_tags, settings.quotas)
        exposition = None
        if settings.http.debug.prometheus.enabled:
            from registry.observe.exposition import Exposition
            from registry.observe.metrics import EventMetrics, count_token
            from registry.observe.timing import INDEX_SECONDS, STORE_SECONDS, timed

            index, store = timed(index, INDEX_SECONDS), timed(store, STORE_SECONDS)
            events.subscribe(EventMetrics())
            if auth is not None:
                auth.count_token = count_token
            disk = settings.blob_root if settings.storage.kind == "filesystem" else None
            endpoints = [
                endpoint.name for endpoint in settings.notifications.endpoints if not endpoint.disabled
            ]
            exposition = Exposition(index, settings.metrics.htpasswd, disk, endpoints)
        return cls(
            settings=settings,
            index=index,
            store=store,
            events=events,
            blobs=BlobService(
                index,
                store,
                events,
                settings.storage.maintenance.uploadpurging.age,
                settings.limits.max_uploads_per_repository,
                guards,
                link_refresh=settings.gc.grace / 2,
            ),
            manifests=ManifestService(index, events, guards),
            repositories=RepositoryService(index),
            users=users,
            auth=auth,
            exposition=exposition,
            storage_health=StorageHealth(store.check, settings.health.storagedriver)
            if settings.health.storagedriver.enabled
            else None,
            kept=KeptAnswers(index.version, settings.limits.max_header_size, settings.server.read_cache_share)
            if auth is None and not settings.limits.rate and settings.server.read_cache
            else None,
        )


def _delivery_worker(registry: Registry) -> DeliveryWorker | None:
    """The webhook sender of this process, when some endpoint is configured."""
    notifier = registry.events.notifier
    if notifier is None or not notifier.endpoints:
        return None
    from registry.events.delivery import DeliveryWorker

    metrics = None
    if registry.settings.http.debug.prometheus.enabled:
        from registry.observe.metrics import NotificationMetrics

        metrics = NotificationMetrics(endpoint.name for endpoint in notifier.endpoints)
    return DeliveryWorker(registry.index.outbox, notifier, metrics)


async def _purge_uploads(registry: Registry) -> None:
    # Often enough that a session never outlives its expiry by much more than a quarter of it.
    interval = max(1.0, min(MAX_PURGE_INTERVAL, registry.settings.storage.maintenance.uploadpurging.age / 4))
    while True:
        try:
            purged = await registry.blobs.purge_expired()
            if purged:
                log.info("purged %d expired upload sessions", purged)
        except Exception:
            log.exception("upload purge failed")
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> Starlette:
    """The ASGI app. The index schema must already be migrated (`registry serve` does it first)."""
    registry = Registry.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await registry.index.open()
        purging = settings.storage.maintenance.uploadpurging.enabled
        purger = asyncio.create_task(_purge_uploads(registry)) if purging else None
        scrubber = start_background_scrub(settings, registry.index, registry.store)
        collector = start_background_gc(
            settings.gc, registry.index, registry.store, registry.blobs.purge_expired, registry.events
        )
        deliveries = _delivery_worker(registry)
        background = [task for task in (deliveries, registry.storage_health) if task is not None]
        for task in background:
            task.start()
        try:
            yield
        finally:
            purger.cancel()
            for task in background:
                await task.stop()
            for task in (scrubber, collector):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            if registry.users is not None:
                await registry.users.close()
            await registry.index.close()

    exception_handlers: dict[Any, ExceptionHandler] = {
        RegistryError: registry_error,
        HTTPException: http_error,
    }
    app = Starlette(lifespan=lifespan, exception_handlers=exception_handlers)
    app.router = Router(ROUTES, lifespan=lifespan, redirect_slashes=False)
    app.state.registry = registry
    check = None
    if registry.auth is not None:
        from registry.auth.middleware import AccessCheck

        check = AccessCheck(registry.auth)
    app.add_middleware(
        Gate,
        routes=ROUTES,
        read_only=settings.storage.maintenance.readonly.enabled,
        check=check,
        exception_handlers=exception_handlers,
    )
    if settings.limits.rate:
        # Outside the gate: failed logins count against the rate too.
        app.add_middleware(
            RateLimit,
            rate=settings.limits.rate,
            burst=settings.limits.burst,
            trusted_proxies=settings.trusted_proxy_addresses,
        )
    # Every answer the layers inside give, their 500s included, gets the API version header here.
    app.add_middleware(FailureBoundary)
    return app
