"""Whole repositories: how many bytes they hold (`registry du`, `GET /admin/usage`) and deleting one
(`registry repo delete`)."""

from __future__ import annotations

from dataclasses import dataclass

from registry.errors import ErrorCode, RegistryError
from registry.index import MetadataIndex, UsageReport
from registry.lifecycle.settings import is_repository_glob


@dataclass(frozen=True, slots=True)
class Usage:
    report: UsageReport
    # Bytes of blobs stored but referenced by no manifest (uploads in progress, what deletes left):
    # the collector's, after its grace period. Only reported for the whole registry.
    unreferenced: int | None

    def as_json(self) -> dict:
        body: dict = {
            "repositories": [
                {"name": item.name, "blobs": item.blobs, "bytes": item.bytes}
                for item in self.report.repositories
            ],
            "total": {"blobs": self.report.blobs, "bytes": self.report.bytes},
        }
        if self.unreferenced is not None:
            body["unreferenced"] = {"bytes": self.unreferenced}
        return body


class RepositoryService:
    def __init__(self, index: MetadataIndex) -> None:
        self.index = index

    async def usage(self, repositories: str = "*") -> Usage:
        """Usage of the repositories matching a glob (a name matches itself; `team/*` a namespace)."""
        if not is_repository_glob(repositories):
            raise RegistryError(
                ErrorCode.NAME_INVALID, {"repository": repositories}, message="not a repository glob"
            )
        report = await self.index.usage_report(repositories)
        unreferenced = None
        if repositories == "*":
            unreferenced = max(0, (await self.index.usage()).blob_bytes - report.bytes)
        return Usage(report, unreferenced)

    async def delete(self, repository: str) -> bool:
        """Delete a repository's tags and manifests and the repository (one transaction); False when
        there is none. The catalog no longer lists it; its blobs' bytes go with the collector."""
        return await self.index.delete_repository(repository)
