"""Resource scopes of the Docker token protocol: `repository:team/app:pull,push`, `registry:catalog:*`.

Distribution's scope grammar (docs/content/spec/auth/scope.md): the type comes before the first colon
and the actions after the last one, because a name may carry a `host:port` prefix. A resource class
(`repository(plugin)`) is deprecated and ignored, so it compares equal to the bare type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"
PULL, PUSH, DELETE = "pull", "push", "delete"
REPOSITORY_ACTIONS = frozenset({PULL, PUSH, DELETE})
ALL = "*"

_TYPE = re.compile(r"([a-z0-9]+)(?:\([a-z0-9]+\))?")
_ACTION = re.compile(r"[a-z*]+")

Resource = tuple[str, str]  # (type, name)


@dataclass(frozen=True, slots=True)
class ResourceScope:
    type: str
    name: str
    actions: frozenset[str]

    @property
    def resource(self) -> Resource:
        return (self.type, self.name)

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def claim(self) -> dict[str, Any]:
        """The entry of a token's `access` claim (jwt.md)."""
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(text: str) -> ResourceScope:
    kind, colon, rest = text.partition(":")
    name, colon2, actions = rest.rpartition(":")
    typed = _TYPE.fullmatch(kind)
    if not (colon and colon2 and name and typed):
        raise ValueError(f"invalid scope {text!r}")
    wanted = frozenset(a for a in actions.split(",") if a)
    if not all(_ACTION.fullmatch(a) for a in wanted):
        raise ValueError(f"invalid actions in scope {text!r}")
    return ResourceScope(typed.group(1), name, wanted)


def parse_scopes(values: Iterable[str]) -> list[ResourceScope]:
    """Scopes from repeated `scope` parameters, each of which may itself hold a space-separated list
    (the POST form, and clients that pass a challenge's scope through unsplit)."""
    return merge(parse_scope(item) for value in values for item in value.split())


def merge(scopes: Iterable[ResourceScope]) -> list[ResourceScope]:
    """One scope per resource, with the union of the actions asked for it, in first-seen order."""
    actions: dict[Resource, frozenset[str]] = {}
    for scope in scopes:
        actions[scope.resource] = actions.get(scope.resource, frozenset()) | scope.actions
    return [ResourceScope(kind, name, wanted) for (kind, name), wanted in actions.items()]


def access_from_claim(claim: Any) -> Mapping[Resource, frozenset[str]]:
    """A verified token's `access` claim as resource -> actions; raises ValueError when malformed."""
    if claim is None:
        return {}
    if not isinstance(claim, list):
        raise ValueError("the access claim is not a list")
    scopes = []
    for entry in claim:
        if not isinstance(entry, dict):
            raise ValueError("an access entry is not an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not (isinstance(kind, str) and isinstance(name, str) and isinstance(actions, list)):
            raise ValueError("an access entry lacks type, name or actions")
        if not all(isinstance(action, str) for action in actions):
            raise ValueError("an access entry has a non-string action")
        typed = _TYPE.fullmatch(kind)
        scopes.append(ResourceScope(typed.group(1) if typed else kind, name, frozenset(actions)))
    return {scope.resource: scope.actions for scope in merge(scopes)}
