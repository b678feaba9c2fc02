"""Builds the ASGI application from settings: store, index, services, routes and background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.common import API_VERSION_HEADER, error_response, http_error, registry_error
from registry.api.failures import FailureBoundary
from registry.api.routes import ROUTES
from registry.config import Settings
from registry.errors import ErrorCode, RegistryError
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

    @classmethod
    def build(cls, settings: Settings) -> Registry:
        index = SQLIndex(settings.index_url)
        store: BlobStore
        if settings.storage == "s3":
            # Imported only here: workers on the filesystem store never load boto3.
            from registry.storage.s3 import S3Store

            store = S3Store.from_settings(settings)
        else:
            store = FilesystemStore(settings.blob_root)
        users = auth = None
        if settings.auth != "none":
            from registry.auth.authority import Authority
            from registry.index.users import SQLUserDirectory

            users = SQLUserDirectory(settings.index_url)
            auth = Authority.build(settings, users)
        notifier = None
        if settings.notifications.endpoints:
            notifier = Notifier(
                settings.notifications.endpoints, settings.external_url, settings.scheme, settings.port
            )
        events = Dispatcher(notifier)
        guards = Guards(index, settings.immutable_tags, settings.quotas)
        exposition = None
        if settings.metrics_enabled:
            from registry.observe.exposition import Exposition
            from registry.observe.metrics import EventMetrics, count_token
            from registry.observe.timing import INDEX_SECONDS, STORE_SECONDS, timed

            index, store = timed(index, INDEX_SECONDS), timed(store, STORE_SECONDS)
            events.subscribe(EventMetrics())
            if auth is not None:
                auth.count_token = count_token
            disk = settings.blob_root if settings.storage == "filesystem" else None
            endpoints = [
                endpoint.name for endpoint in settings.notifications.endpoints if not endpoint.disabled
            ]
            exposition = Exposition(index, settings.metrics_htpasswd, disk, endpoints)
        return cls(
            settings=settings,
            index=index,
            store=store,
            events=events,
            blobs=BlobService(
                index,
                store,
                events,
                settings.upload_expiry,
                settings.max_uploads_per_repository,
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
        )


class _VersionHeader:
    """Adds `Docker-Distribution-API-Version` to every response, errors included, as clients expect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = (API_VERSION_HEADER[0].lower().encode(), API_VERSION_HEADER[1].encode())

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_header)


class _ReadOnly:
    """`read_only: true`: pulls are served, every change under /v2/ is refused (maintenance)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in ("GET", "HEAD")
            and scope["path"].startswith("/v2/")
        ):
            refused = RegistryError(
                ErrorCode.UNSUPPORTED,
                {"reason": "read-only mode"},
                message="the registry is read-only",
                status=405,
            )
            await error_response(refused)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _delivery_worker(registry: Registry) -> DeliveryWorker | None:
    """The webhook sender of this process, when some endpoint is configured."""
    notifier = registry.events.notifier
    if notifier is None or not notifier.endpoints:
        return None
    from registry.events.delivery import DeliveryWorker

    metrics = None
    if registry.settings.metrics_enabled:
        from registry.observe.metrics import NotificationMetrics

        metrics = NotificationMetrics(endpoint.name for endpoint in notifier.endpoints)
    return DeliveryWorker(registry.index.outbox, notifier, metrics)


async def _purge_uploads(registry: Registry) -> None:
    # Often enough that a session never outlives its expiry by much more than a quarter of it.
    interval = max(1.0, min(MAX_PURGE_INTERVAL, registry.settings.upload_expiry / 4))
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
        purger = asyncio.create_task(_purge_uploads(registry))
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

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            RegistryError: registry_error,
            HTTPException: http_error,
        },
    )
    app.state.registry = registry
    app.router.redirect_slashes = False
    if registry.auth is not None:
        # Inside _VersionHeader: clients recognise a registry's 401 by that header.
        from registry.auth.middleware import AuthMiddleware

        app.add_middleware(AuthMiddleware, authority=registry.auth, routes=ROUTES)
    if settings.read_only:
        app.add_middleware(_ReadOnly)
    # Every failure the layers above did not answer, their 500s included, still gets the version header.
    app.add_middleware(FailureBoundary)
    if settings.rate_limit:
        # Outside auth: failed logins count against the rate too.
        app.add_middleware(
            RateLimit,
            rate=settings.rate_limit,
            burst=settings.rate_limit_burst,
            trusted_proxies=settings.trusted_proxy_addresses,
        )
    app.add_middleware(_VersionHeader)
    return app
