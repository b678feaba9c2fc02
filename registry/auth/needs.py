"""What a request needs to be let through: each row of the route table declares its `Access`, and
`need_of` turns that declaration and the matched path parameters into the scopes to check.

Declared beside the route rather than derived from the path: the auth layer reads the row the router
serves, so the repository checked is byte for byte the one the handler serves, and no path shape
(`"/blobs/uploads/" in path`) has to be recognised twice. Like Distribution, reads need `pull`, writes
`push` (also every step of a blob upload) and deletes `delete`; the catalog needs
`registry:catalog:*` and then shows only what the caller may pull.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from registry.auth.scopes import ALL, CATALOG, DELETE, PULL, PUSH, REGISTRY, REPOSITORY, ResourceScope
from registry.types import is_valid_name


class Access(enum.Enum):
    """What a route needs of its caller."""

    NONE = "none"  # outside /v2/ (token service, operator routes): not checked by the auth layer
    KNOWN = "known"  # the version check: any known caller
    CATALOG = "catalog"
    PULL = "pull"
    PUSH = "push"  # audited as a push of the path's reference or digest
    UPLOAD = "upload"  # a step of a blob upload: push, not audited (the manifest push is)
    MOUNT = "mount"  # starting an upload: push, and pull on a cross-repository mount's source
    DELETE = "delete"  # audited as a delete of the path's reference or digest


@dataclass(frozen=True, slots=True)
class Need:
    """What one request needs. No repository and no catalog: only a known caller (the version check,
    and paths no route serves)."""

    repository: str | None = None
    actions: frozenset[str] = frozenset()
    catalog: bool = False
    # The handler asks the access rules what the caller may pull beyond what the token names (a mount
    # without `from`), so the caller's groups are needed, as for the catalog.
    by_rules: bool = False
    # Scopes the request may use but can do without (pull on a mount's source).
    optional: tuple[ResourceScope, ...] = ()
    # Audited requests: ("push" | "delete", the tag or digest).
    event: tuple[str, str] | None = None

    def required(self) -> list[ResourceScope]:
        if self.catalog:
            return [ResourceScope(REGISTRY, CATALOG, frozenset({ALL}))]
        if self.repository is not None and self.actions:
            return [ResourceScope(REPOSITORY, self.repository, self.actions)]
        return []

    def challenge_scope(self) -> str:
        """The scopes a challenge asks for. A push also asks for pull, as Distribution's challenges do:
        clients request what the challenge names, and a push reads blobs back."""
        scopes = [
            ResourceScope(s.type, s.name, s.actions | {PULL}) if PUSH in s.actions else s
            for s in self.required()
        ]
        return " ".join(str(s) for s in [*scopes, *self.optional])


KNOWN_CALLER = Need()
_PUSH, _PULL, _DELETE = frozenset({PUSH}), frozenset({PULL}), frozenset({DELETE})


def need_of(access: Access, params: Mapping[str, Any], query_string: bytes) -> Need:
    """The need of a request the route declaring `access` serves, with the path parameters it matched."""
    if access is Access.CATALOG:
        return Need(catalog=True)
    name = params.get("name", "")
    if access in (Access.NONE, Access.KNOWN) or not is_valid_name(name):
        return KNOWN_CALLER  # an invalid name: the handler answers NAME_INVALID, to a known caller only
    target = params.get("reference") or params.get("digest") or ""
    if access is Access.PULL:
        return Need(name, _PULL)
    if access is Access.DELETE:
        return Need(name, _DELETE, event=("delete", target))
    if access is Access.PUSH:
        return Need(name, _PUSH, event=("push", target))
    if access is Access.UPLOAD:
        return Need(name, _PUSH)
    query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    source = query.get("from", "")
    mounting = bool(query.get("mount"))
    optional = ()
    if mounting and is_valid_name(source) and source != name:
        optional = (ResourceScope(REPOSITORY, source, _PULL),)
    return Need(name, _PUSH, optional=optional, by_rules=mounting and "from" not in query)
