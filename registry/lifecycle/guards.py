"""Immutable tags and quotas at the manifest push and delete: what the index must check in the change's
own transaction, and the spec-format refusal (403 DENIED, naming the rule) when it says no. Also the
early quota check of a blob upload whose size and digest are known before its bytes are read."""

from __future__ import annotations

from collections.abc import Callable

from registry.errors import ErrorCode, RegistryError
from registry.index import MetadataIndex, PutGuard, Quota, QuotaExceeded, TagFixed
from registry.lifecycle.settings import ImmutableTagRule, ImmutableTagSettings, QuotaSettings


class Guards:
    def __init__(self, index: MetadataIndex, immutable: ImmutableTagSettings, quotas: QuotaSettings) -> None:
        self.index = index
        self.immutable = immutable
        self.quotas = quotas

    async def check_blob(self, repository: str, digest: str, size: int) -> None:
        """Refuse, before its bytes are read, a blob no manifest could reference without going over a
        quota: new to the namespace and too large for the room left. Only a hint of the refusal the
        manifest push would give (that one is exact); a blob already counted is always let through."""
        for rule in self.quotas.rules_for(repository):
            quota = Quota(rule.repositories, rule.limit_bytes)
            used, counted = await self.index.quota_usage(quota.repositories, digest)
            if not counted and used + size > quota.limit:
                raise self.refusal(repository, QuotaExceeded(quota, used, used + size))

    def for_put(self, repository: str, tags: tuple[str, ...] | list[str]) -> PutGuard | None:
        """What a push of these tags into `repository` must respect; None when no rule applies."""
        fixed = frozenset(tag for tag in tags if self.immutable.rule_for(repository, tag))
        quotas = tuple(
            Quota(rule.repositories, rule.limit_bytes) for rule in self.quotas.rules_for(repository)
        )
        return PutGuard(fixed, quotas) if fixed or quotas else None

    def fixed(self, repository: str) -> Callable[[str], bool] | None:
        """Which tags of `repository` are immutable, for a manifest delete; None when none can be."""
        if not any(rule.covers_repository(repository) for rule in self.immutable.rules):
            return None
        return lambda tag: self.immutable.rule_for(repository, tag) is not None

    def check_tag_delete(self, repository: str, tag: str) -> None:
        """Refuse to delete an immutable tag, whether it exists or not (the answer never hangs on a race)."""
        rule = self.immutable.rule_for(repository, tag)
        if rule is not None:
            raise _immutable(rule, tag, None)

    def refusal(self, repository: str, error: TagFixed | QuotaExceeded) -> RegistryError:
        if isinstance(error, QuotaExceeded):
            quota = error.quota
            return RegistryError(
                ErrorCode.DENIED,
                {
                    "reason": "quota exceeded",
                    "repositories": quota.repositories,
                    "used": error.used,
                    "needed": error.after,
                    "limit": quota.limit,
                },
                message=(
                    f"storage quota exceeded: repositories {quota.repositories} would hold {error.after} "
                    f"bytes, over their limit of {quota.limit} (now {error.used})"
                ),
            )
        rule = self.immutable.rule_for(repository, error.tag)
        assert rule is not None
        return _immutable(rule, error.tag, error.digest)


def _immutable(rule: ImmutableTagRule, tag: str, digest: str | None) -> RegistryError:
    detail = {
        "reason": "immutable tag",
        "tag": tag,
        "rule": {"repositories": rule.repositories, "tags": rule.tags},
    }
    if digest is not None:
        detail["digest"] = digest
    return RegistryError(
        ErrorCode.DENIED,
        detail,
        message=f"tag {tag} is immutable (immutable_tags rule {rule.repositories!r}, tags {rule.tags!r})",
    )
