"""The lifecycle settings sections: `retention`, `quotas` and `immutable_tags`, and the rule records in them.

Repositories are named by globs, as the access rules name them (`*` any run of characters, `/` included;
`?` one character), so `team/*` is a namespace; tags by regular expressions matched whole, as GitLab's
cleanup policies write them (`v[0-9]+(\\.[0-9]+)*`). Both are checked when the settings load, so a bad
pattern stops the start with one line instead of failing a push later. Durations and sizes are numbers
(seconds, bytes) or text such as `30d`, `1h30m`, `10GiB`, `500MB`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from datetime import timedelta

from registry.settings import values

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?i?b?)", re.IGNORECASE)
_REPOSITORY_GLOB = re.compile(r"[a-z0-9._/*?-]{1,255}")
_SIZE_FACTORS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def parse_duration(text: str, setting: str) -> timedelta:
    """Seconds as a number, or `30d`, `1h30m`, `2w` (as `settings.values.parse_duration` reads any duration
    setting); a ValueError naming the setting."""
    seconds = values.parse_duration(str(text))
    if seconds is None:
        raise ValueError(f"setting {setting!r}: {text!r} is not a duration such as 3600, 30m, 12h, 7d or 2w")
    return timedelta(seconds=seconds)


def parse_size(text: str, setting: str) -> int:
    """Bytes as a number, or `10GiB`, `500MB`, `1.5G` (k, M, G, T, P: powers of 1000; with `i`, of 1024)."""
    match = _SIZE.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"setting {setting!r}: {text!r} is not a size such as 1073741824, 500MB or 10GiB")
    number, unit = float(match[1]), match[2].lower().rstrip("b")
    factor = 1024 ** (" kmgtp".index(unit[0])) if unit.endswith("i") else _SIZE_FACTORS[unit]
    return int(number * factor)


def _optional_duration(text: str) -> timedelta | None:
    """A rule's duration; empty or 0 turns its criterion off, as `keep_newest: 0` does."""
    duration = parse_duration(text, "") if text else None
    return duration if duration else None


@functools.lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository glob as a regular expression: `*` any run (slashes too), `?` one character."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def matches_repository(pattern: str, repository: str) -> bool:
    return glob_regex(pattern).fullmatch(repository) is not None


def is_repository_glob(pattern: str) -> bool:
    """What a repository name may hold, with `*` and `?`. Repository names are lower case: an upper-case
    glob would match nothing (PostgreSQL) or, through SQLite's LIKE, names it does not spell."""
    return _REPOSITORY_GLOB.fullmatch(pattern) is not None


def _check_glob(pattern: str, setting: str) -> None:
    if not is_repository_glob(pattern):
        raise ValueError(f"setting {setting!r}: 'repositories' needs a lower-case glob such as 'team/*'")


def _check_regex(pattern: str, setting: str, key: str) -> None:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"setting {setting!r}: {key} {pattern!r} is not a regular expression: {error}"
        ) from None


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionRule:
    """What to delete in the repositories matching `repositories` (the first rule matching a repository
    is the one that applies to it).

    A tag goes when it does not match `keep_tags`, is not among the `keep_newest` most recently pushed
    of the tags that do not match it, and (with `delete_tags_older_than`) was pushed longer ago than
    that. Without `keep_newest` and `delete_tags_older_than`, no tag goes. A manifest goes when no tag
    names it, nothing kept in the repository points at it (an index, or the subject of a referrer), and
    it was pushed longer ago than `delete_untagged_after`.
    """

    repositories: str
    keep_newest: int = 0
    keep_tags: str = ""
    delete_tags_older_than: str = ""
    delete_untagged_after: str = ""

    def __post_init__(self) -> None:
        where = f"retention.rules[{self.repositories}]"
        _check_glob(self.repositories, where)
        if self.keep_newest < 0:
            raise ValueError(f"setting {where!r}: keep_newest must be 0 or more")
        if self.keep_tags:
            _check_regex(self.keep_tags, where, "keep_tags")
        for text in (self.delete_tags_older_than, self.delete_untagged_after):
            if text:
                parse_duration(text, where)

    @property
    def tags_max_age(self) -> timedelta | None:
        return _optional_duration(self.delete_tags_older_than)

    @property
    def untagged_max_age(self) -> timedelta | None:
        return _optional_duration(self.delete_untagged_after)

    def keeps(self, tag: str) -> bool:
        return bool(self.keep_tags) and re.fullmatch(self.keep_tags, tag) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionSettings:
    # Off, `registry gc --dry-run` only shows what the rules would delete; on, `registry gc` (and the
    # collector) deletes it.
    enabled: bool = False
    rules: tuple[RetentionRule, ...] = ()

    def rule_for(self, repository: str) -> RetentionRule | None:
        return next((r for r in self.rules if matches_repository(r.repositories, repository)), None)


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaRule:
    """At most `limit` bytes of blobs referenced by the manifests of all repositories matching
    `repositories` together, each blob counted once however many of them reference it."""

    repositories: str
    limit: str

    def __post_init__(self) -> None:
        where = f"quotas.rules[{self.repositories}]"
        _check_glob(self.repositories, where)
        parse_size(self.limit, where)

    @property
    def limit_bytes(self) -> int:
        return parse_size(self.limit, "")


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaSettings:
    rules: tuple[QuotaRule, ...] = ()

    def rules_for(self, repository: str) -> tuple[QuotaRule, ...]:
        """Every quota a push into `repository` must stay within (a namespace and a narrower one both
        apply)."""
        return tuple(r for r in self.rules if matches_repository(r.repositories, repository))


@dataclasses.dataclass(frozen=True, slots=True)
class ImmutableTagRule:
    """Tags matching `tags` (a regular expression, matched whole) in repositories matching
    `repositories`: pushed once, never moved to another manifest nor deleted."""

    repositories: str
    tags: str

    def __post_init__(self) -> None:
        where = f"immutable_tags.rules[{self.repositories}]"
        _check_glob(self.repositories, where)
        _check_regex(self.tags, where, "tags")

    def covers_repository(self, repository: str) -> bool:
        return matches_repository(self.repositories, repository)

    def covers(self, repository: str, tag: str) -> bool:
        return self.covers_repository(repository) and re.fullmatch(self.tags, tag) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class ImmutableTagSettings:
    rules: tuple[ImmutableTagRule, ...] = ()

    def rule_for(self, repository: str, tag: str) -> ImmutableTagRule | None:
        """The rule that makes this tag immutable, or None."""
        return next((r for r in self.rules if r.covers(repository, tag)), None)
