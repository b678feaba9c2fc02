""".dockerignore: which context paths the build never sees, with Docker's pattern rules.

Each line is a pattern relative to the context root (a leading `/` is dropped, paths are cleaned); `*`
and `?` stay inside one path component, `**` spans any number of them, `[...]` is a class; `!` makes an
exception; the last pattern that matches a path decides. A pattern matching a directory excludes
everything under it (unless a later exception brings a path back).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


def _regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            index += 2
            if pattern.startswith("/", index):
                index += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]")
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re.escape(pattern[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    exception: bool


class IgnoreRules:
    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[_Rule] = []
        for line in patterns:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            exception = text.startswith("!")
            text = text.removeprefix("!").strip()
            text = posixpath.normpath(text.lstrip("/")) if text.strip("/") else "."
            self.rules.append(_Rule(_regex(text), exception))

    @classmethod
    def read(cls, context: Path) -> IgnoreRules:
        try:
            return cls((context / ".dockerignore").read_text().splitlines())
        except FileNotFoundError:
            return cls([])

    def excluded(self, path: str) -> bool:
        """Whether `path` (relative to the context root, `/`-separated) is left out of the build."""
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: count + 1]) for count in range(len(parts))]
        verdict = False
        for rule in self.rules:
            if any(rule.regex.fullmatch(prefix) for prefix in prefixes):
                verdict = not rule.exception
        return verdict
