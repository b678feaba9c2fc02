"""Answers kept while what they were computed from is unchanged.

Two places keep answers of the index per process: the SQLite reader keeps query rows
(`registry/index/reads.py`), and the observe layer keeps whole responses to pulls
(`registry/api/kept.py`). Both file them under a version of the index, a token that changes with every
commit by any process, and both must forget everything at once when it moves on. This is that bounded
map: a new version empties it, and it keeps at most `max_entries` values of at most `max_entry` bytes,
`max_total` bytes in all, so the memory it takes has a fixed ceiling whatever clients ask for.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class KeptWhileUnchanged(Generic[K, V]):
    __slots__ = ("_sizes", "_total", "_values", "_version", "max_entries", "max_entry", "max_total")

    def __init__(self, max_entries: int, max_entry: int, max_total: int) -> None:
        self.max_entries = max_entries
        self.max_entry = max_entry
        self.max_total = max_total
        self._version = b""
        self._values: dict[K, V] = {}
        self._sizes: dict[K, int] = {}
        self._total = 0

    def get(self, version: bytes, key: K) -> V | None:
        """The value kept for `key` at `version`; a version not seen before forgets everything kept."""
        if version != self._version:
            self._values.clear()
            self._sizes.clear()
            self._total = 0
            self._version = version
            return None
        return self._values.get(key)

    def keep(self, version: bytes, key: K, value: V, size: int) -> None:
        """Keep `value` (`size` bytes) if it was computed at the version now current and fits; it
        replaces what `key` had."""
        if version != self._version or size > self.max_entry:
            return
        total = self._total - self._sizes.get(key, 0) + size
        if total > self.max_total or (key not in self._values and len(self._values) >= self.max_entries):
            return
        self._values[key] = value
        self._sizes[key] = size
        self._total = total

    def __len__(self) -> int:
        return len(self._values)
