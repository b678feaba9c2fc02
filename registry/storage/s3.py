"""The S3 blob store: the content layer on the S3 driver, for any number of stateless processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.storage.content import SMALL_BLOBS_TOTAL, ContentStore
from registry.storage.drivers.s3 import S3Driver

if TYPE_CHECKING:
    from registry.config import Settings


class S3Store(ContentStore):
    def __init__(
        self, bucket: str, *, redirect: bool = False, small_total: int = SMALL_BLOBS_TOTAL, **options: str
    ) -> None:
        """`options`: the S3Driver's prefix, endpoint_url, region, access_key, secret_key."""
        super().__init__(S3Driver(bucket, redirect=redirect, **options), small_total)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        return cls(
            settings.storage.s3.bucket,
            prefix=settings.storage.s3.rootdirectory,
            endpoint_url=settings.storage.s3.regionendpoint,
            region=settings.storage.s3.region,
            access_key=settings.storage.s3.accesskey,
            secret_key=settings.storage.s3.secretkey,
            redirect=not settings.storage.redirect.disable,
            small_total=settings.server.read_cache_share,
        )
