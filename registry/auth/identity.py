"""Who is calling, and what the auth layer found they may do, as handlers see it.

The middleware decides once per request and leaves a `Grant` in the ASGI scope's state; the few handlers
whose answer depends on the caller (the catalog, cross-repository mounts) ask the grant instead of
evaluating rules or tokens themselves. Without auth (`auth: none`) there is no grant and everything is
allowed, exactly as before auth existed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GRANT_KEY = "registry.grant"
# Lowercase like repository names, so that `${user}/*` namespaces are valid repository names.
_USER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class Identity:
    name: str = ""
    groups: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        return not self.name


ANONYMOUS = Identity()


def validate_user_name(name: str) -> str:
    """User and group names: 1-64 of `a-z 0-9 . _ -`, starting and ending alphanumeric."""
    if not _USER_NAME.fullmatch(name):
        raise ValueError(
            f"invalid name {name!r}: use 1-64 of a-z, 0-9, '.', '_', '-', alphanumeric at both ends"
        )
    return name


@dataclass(frozen=True, slots=True)
class Grant:
    identity: Identity
    # (repository, action) -> allowed for this request's credentials.
    allows: Callable[[str, str], bool]
    # repository -> the access rules let this caller pull it, whatever this request's token names: what
    # the catalog shows, and where a mount without `from` may take a blob from.
    lists: Callable[[str], bool]


def grant_of(scope: Any) -> Grant | None:
    return scope.get("state", {}).get(GRANT_KEY)


def may_read_source(scope: Any, source: str) -> bool:
    """Whether a cross-repository mount may look into `source`: only with pull access to it."""
    grant = grant_of(scope)
    return grant is None or grant.allows(source, "pull")


def readable_repositories(scope: Any) -> Callable[[str], bool]:
    """Where a mount without `from` may find its blob: repositories the caller may pull. No token can
    name them in advance, so the access rules decide, as for the catalog."""
    grant = grant_of(scope)
    return grant.lists if grant is not None else _everything


def _everything(_repository: str) -> bool:
    return True


def may_list(scope: Any, repository: str) -> bool:
    grant = grant_of(scope)
    return grant is None or grant.lists(repository)
