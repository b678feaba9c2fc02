"""Retention: which tags and untagged manifests the rules delete, chosen by pure functions over a
repository's listing, then deleted through the index one repository per transaction.

Planning and applying are apart so that `registry gc --dry-run` can show a plan before the rules are
enabled, and so that the choice can be tested without a database. Applying re-checks each deletion in
its transaction: a tag moved, or a manifest tagged or listed by a new index since the plan, stays.
Deleting tags and manifests frees no bytes by itself; the blobs they leave unreferenced are the
collector's, after its grace period.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from registry.config import Settings
from registry.events import Action, Dispatcher, Event, Target
from registry.index import ManifestState, MetadataIndex, OutboxEntry, RetentionReport, TagState
from registry.lifecycle.settings import RetentionRule

# Repositories read from the index at a time while planning.
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Removal:
    """One tag or manifest a rule deletes, and why, in words for the operator."""

    name: str  # the tag, or the manifest's digest
    digest: str
    reason: str


@dataclass(frozen=True, slots=True)
class RepositoryPlan:
    repository: str
    rule: RetentionRule
    tags: tuple[Removal, ...]
    manifests: tuple[Removal, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    repositories: tuple[RepositoryPlan, ...] = ()

    @property
    def tags(self) -> int:
        return sum(len(part.tags) for part in self.repositories)

    @property
    def manifests(self) -> int:
        return sum(len(part.manifests) for part in self.repositories)


@dataclass(frozen=True, slots=True)
class Applied:
    tags: int
    manifests: int

    def summary(self) -> str:
        return summary("deleted", self.tags, self.manifests)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def choose_tags(
    rule: RetentionRule, tags: Sequence[TagState], now: datetime, fixed: Callable[[str], bool]
) -> list[Removal]:
    """The tags `rule` deletes: not immutable (`fixed`), not matching `keep_tags`, not among the
    `keep_newest` most recently pushed of the others, and older than `delete_tags_older_than` if set.
    Newest means latest `updated_at`, ties broken by the greater name."""
    max_age = rule.tags_max_age
    if rule.keep_newest == 0 and max_age is None:
        return []
    candidates = sorted(
        (tag for tag in tags if not fixed(tag.name) and not rule.keeps(tag.name)),
        key=lambda tag: (tag.updated_at, tag.name),
        reverse=True,
    )
    chosen = []
    for tag in candidates[rule.keep_newest :]:
        age = (now - tag.updated_at).total_seconds()
        if max_age is not None and age <= max_age.total_seconds():
            continue
        reasons = []
        if rule.keep_newest:
            reasons.append(f"not among the {rule.keep_newest} newest")
        if max_age is not None:
            reasons.append(f"pushed {_ago(age)} ago, over {rule.delete_tags_older_than}")
        chosen.append(Removal(tag.name, tag.digest, "; ".join(reasons)))
    return chosen


def choose_manifests(
    rule: RetentionRule, manifests: Sequence[ManifestState], tagged: set[str], now: datetime
) -> list[Removal]:
    """The manifests `rule` deletes: untagged (no digest in `tagged`), pushed longer ago than
    `delete_untagged_after`, listed by no manifest that stays (an index's children stay with it), and
    not a referrer of a manifest that stays (a signature stays with its image). Parents come before
    their children, so deleting in this order never leaves a listed manifest missing."""
    max_age = rule.untagged_max_age
    if max_age is None:
        return []
    by_digest = {manifest.digest: manifest for manifest in manifests}
    parents = dict.fromkeys(by_digest, 0)
    referrers: dict[str, list[str]] = {}
    for manifest in manifests:
        for child in set(manifest.children):
            if child in parents:
                parents[child] += 1
        if manifest.subject in by_digest:
            referrers.setdefault(manifest.subject, []).append(manifest.digest)
    gone: set[str] = set()

    def removable(digest: str) -> bool:
        manifest = by_digest[digest]
        return (
            digest not in gone
            and digest not in tagged
            and parents[digest] == 0
            and not (manifest.subject in by_digest and manifest.subject not in gone)
            and now - manifest.created_at > max_age
        )

    queue = [(by_digest[d].created_at, d) for d in by_digest if removable(d)]
    heapq.heapify(queue)
    chosen = []
    while queue:
        _, digest = heapq.heappop(queue)
        if not removable(digest):
            continue
        gone.add(digest)
        manifest = by_digest[digest]
        age = _ago((now - manifest.created_at).total_seconds())
        chosen.append(
            Removal(digest, digest, f"untagged, pushed {age} ago, over {rule.delete_untagged_after}")
        )
        for child in set(manifest.children):
            if child in parents:
                parents[child] -= 1
                heapq.heappush(queue, (by_digest[child].created_at, child))
        for referrer in referrers.get(digest, ()):
            heapq.heappush(queue, (by_digest[referrer].created_at, referrer))
    return chosen


def plan_repository(
    repository: str,
    rule: RetentionRule,
    tags: Sequence[TagState],
    manifests: Sequence[ManifestState],
    now: datetime,
    fixed: Callable[[str], bool],
) -> RepositoryPlan:
    """One repository's plan: its tags first, then the manifests untagged once those tags are gone."""
    removed_tags = choose_tags(rule, tags, now, fixed)
    removed_names = {removal.name for removal in removed_tags}
    tagged = {tag.digest for tag in tags if tag.name not in removed_names}
    removed_manifests = choose_manifests(rule, manifests, tagged, now)
    return RepositoryPlan(repository, rule, tuple(removed_tags), tuple(removed_manifests))


async def plan_retention(index: MetadataIndex, settings: Settings, now: datetime | None = None) -> Plan:
    """What the retention rules would delete now, in every repository a rule matches (the first rule
    matching a repository applies); immutable tags are never chosen."""
    now = now or datetime.now(UTC)
    rules, immutable = settings.retention, settings.immutable_tags
    parts = []
    last: str | None = None
    while True:
        names = await index.list_repositories(PAGE, last)
        for name in names:
            rule = rules.rule_for(name)
            if rule is None:
                continue
            tags, manifests = await index.retention_state(name)
            part = plan_repository(
                name,
                rule,
                tags,
                manifests,
                now,
                lambda tag, name=name: immutable.rule_for(name, tag) is not None,
            )
            if part.tags or part.manifests:
                parts.append(part)
        if len(names) < PAGE:
            return Plan(tuple(parts))
        last = names[-1]


async def apply_retention(index: MetadataIndex, plan: Plan, events: Dispatcher) -> Applied:
    """Delete what the plan chose, one transaction per repository; what changed since the plan stays.

    Each deletion is reported as a client's DELETE of it would be, its webhook events stored in the same
    transaction: a receiver that mirrors the registry sees retention's deletions too."""
    tags = manifests = 0
    for part in plan.repositories:
        reported: list[Event] = []
        gone_tags, gone_manifests = await index.remove_retained(
            part.repository,
            [(removal.name, removal.digest) for removal in part.tags],
            [removal.digest for removal in part.manifests],
            _reporter(events, part.repository, reported),
        )
        for event in reported:
            events.emit(event)
        tags, manifests = tags + len(gone_tags), manifests + len(gone_manifests)
    return Applied(tags, manifests)


def _reporter(events: Dispatcher, repository: str, reported: list[Event]) -> RetentionReport:
    """The outbox entries of what one repository's transaction deleted, its events kept in `reported`
    (replaced should the transaction be retried: those of the one that committed)."""

    def report(tags: Sequence[str], manifests: Sequence[str]) -> Sequence[OutboxEntry]:
        reported[:] = [
            *(Event.now(Target.TAG, Action.DELETE, repository, tag=tag) for tag in tags),
            *(Event.now(Target.MANIFEST, Action.DELETE, repository, digest=digest) for digest in manifests),
        ]
        return events.outbox(reported)

    return report


def summary(verb: str, tags: int, manifests: int) -> str:
    return f"retention: {verb} {tags} tag(s) and {manifests} untagged manifest(s)"


def describe(plan: Plan, applied: bool) -> list[str]:
    """The plan as lines for the operator, one per tag or manifest; a dry run's end with the counts."""
    verb = "deleted" if applied else "would delete"
    lines = []
    for part in plan.repositories:
        for removal in part.tags:
            lines.append(f"retention: {verb} tag {part.repository}:{removal.name} ({removal.reason})")
        for removal in part.manifests:
            lines.append(f"retention: {verb} manifest {part.repository}@{removal.digest} ({removal.reason})")
    if not applied:
        lines.append(summary(verb, plan.tags, plan.manifests))
    return lines
