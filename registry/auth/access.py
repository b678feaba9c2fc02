"""Access rules: which users, groups and anonymous callers may pull, push or delete which repositories.

A rules file (YAML) is a list of grants; there is no deny, so the answer never depends on the order:
a caller's actions on a repository are the union over the rules that name the caller and match it.

    rules:
      - who: [group:developers, user:ci]        # user:NAME, group:NAME, authenticated, anonymous
        repositories: ["team/*"]                # globs: * is any run of characters (/ included), ? one
        actions: [pull, push]                   # pull, push, delete, or * for all three
      - who: [authenticated]
        repositories: ["${user}/*"]             # the per-user namespace: alice owns alice/...
        actions: ["*"]
      - who: [anonymous]
        repositories: ["public/*"]
        actions: [pull]

Without a rules file the default applies: every authenticated user may pull and push everything,
anonymous callers nothing. A rules file replaces that default entirely.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from registry.auth.identity import Identity
from registry.auth.scopes import ALL, PULL, PUSH, REPOSITORY_ACTIONS

log = logging.getLogger("registry.auth")
USER_PLACEHOLDER = "${user}"
_PATTERN_TOKEN = re.compile(r"(\$\{user\}|\*|\?)")
_RULE_KEYS = {"who", "repositories", "actions"}
# How often a running server looks at the rules file's modification time.
RELOAD_INTERVAL = 1.0


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str, user: str) -> re.Pattern[str]:
    parts = []
    for token in _PATTERN_TOKEN.split(pattern):
        if token == USER_PLACEHOLDER:
            parts.append(re.escape(user))  # a name is text, never a pattern: no escalation by naming
        elif token == "*":
            parts.append(".*")
        elif token == "?":
            parts.append(".")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class Rule:
    users: frozenset[str]
    groups: frozenset[str]
    authenticated: bool
    anonymous: bool
    patterns: tuple[str, ...]
    actions: frozenset[str]

    def names(self, identity: Identity) -> bool:
        if identity.anonymous:
            return self.anonymous
        return self.authenticated or identity.name in self.users or bool(self.groups & identity.groups)

    def matches(self, identity: Identity, repository: str) -> bool:
        for pattern in self.patterns:
            if USER_PLACEHOLDER in pattern and identity.anonymous:
                continue  # anonymous callers have no namespace
            if _compiled(pattern, identity.name).fullmatch(repository):
                return True
        return False


class Rules:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def default(cls) -> Rules:
        return cls([Rule(frozenset(), frozenset(), True, False, ("*",), frozenset({PULL, PUSH}))])

    @classmethod
    def load(cls, path: Path) -> Rules:
        document = yaml.safe_load(path.read_text()) or {}
        try:
            return cls.parse(document)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def parse(cls, document: Any) -> Rules:
        if (
            not isinstance(document, dict)
            or set(document) != {"rules"}
            or not isinstance(document["rules"], list)
        ):
            raise ValueError("expected a mapping with one key, 'rules', holding a list")
        return cls([_parse_rule(number, entry) for number, entry in enumerate(document["rules"], 1)])

    def actions(self, identity: Identity, repository: str) -> frozenset[str]:
        granted: frozenset[str] = frozenset()
        for rule in self.rules:
            if rule.names(identity) and rule.matches(identity, repository):
                granted |= rule.actions
        return granted

    def may_list_catalog(self, identity: Identity) -> bool:
        """Whether the catalog is worth showing at all: some rule lets this caller pull something."""
        return any(rule.names(identity) and PULL in rule.actions for rule in self.rules)


def _strings(number: int, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"rule {number}: '{key}' must be a non-empty list of strings")
    return value


def _parse_rule(number: int, entry: Any) -> Rule:
    if not isinstance(entry, dict) or set(entry) != _RULE_KEYS:
        raise ValueError(f"rule {number}: expected exactly the keys {', '.join(sorted(_RULE_KEYS))}")
    users, groups = set(), set()
    authenticated = anonymous = False
    for who in _strings(number, "who", entry["who"]):
        kind, _, name = who.partition(":")
        if who == "authenticated":
            authenticated = True
        elif who == "anonymous":
            anonymous = True
        elif kind == "user" and name:
            users.add(name)
        elif kind == "group" and name:
            groups.add(name)
        else:
            raise ValueError(f"rule {number}: unknown 'who' entry {who!r} (user:NAME, group:NAME, ...)")
    actions = set(_strings(number, "actions", entry["actions"]))
    unknown = actions - REPOSITORY_ACTIONS - {ALL}
    if unknown:
        raise ValueError(f"rule {number}: unknown action(s) {', '.join(sorted(unknown))}")
    if ALL in actions:
        actions = set(REPOSITORY_ACTIONS)
    return Rule(
        frozenset(users),
        frozenset(groups),
        authenticated,
        anonymous,
        tuple(_strings(number, "repositories", entry["repositories"])),
        frozenset(actions),
    )


class RulesFile:
    """The configured rules, re-read when the file changes so edits apply without a restart. A file that
    no longer parses keeps the last good rules in force (and says so in the log)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self._rules = Rules.load(self.path) if self.path else Rules.default()
        self._stamp = self._mtime()
        self._checked = time.monotonic()

    def _mtime(self) -> float | None:
        try:
            return os.stat(self.path).st_mtime if self.path else None
        except OSError:
            return None

    def current(self) -> Rules:
        if self.path is None or time.monotonic() - self._checked < RELOAD_INTERVAL:
            return self._rules
        self._checked = time.monotonic()
        stamp = self._mtime()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._rules = Rules.load(self.path)
                log.info("access rules reloaded from %s", self.path)
            except (OSError, ValueError, yaml.YAMLError) as error:
                log.error("access rules not reloaded, the previous ones stay in force: %s", error)
        return self._rules
