"""The S3 blob store: the content layer on the S3 driver, for any number of stateless processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.storage.content import ContentStore
from registry.storage.drivers.s3 import S3Driver

if TYPE_CHECKING:
    from registry.config import Settings


class S3Store(ContentStore):
    def __init__(self, bucket: str, **options: str) -> None:
        """`options`: the S3Driver's prefix, endpoint_url, region, access_key, secret_key."""
        super().__init__(S3Driver(bucket, **options))

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        return cls(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
        )
