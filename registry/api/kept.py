"""Kept answers: the last complete answer to a pull, given again while the index is unchanged.

Manifest GETs and HEADs and blob HEADs are most of what a registry answers, and their answers depend on
nothing but the index (a manifest's bytes are in it; a blob HEAD answers from it alone) and the
request's method, path and Accept header; so does a small blob's GET, whose bytes the store keeps in
memory anyway (`BlobStore.small_blob`: bytes named by their digest never change). So the observe
layer keeps such an answer as it went out (status, headers, body) under the index's version, a token
every commit by any process changes (the SQLite WAL index header: see registry/index/reads.py), and
answers the same request from it while the version holds, without the layers in between, the route
table or the handler. In-process (`tests/perf/layers.py`) that took a manifest GET from about 33 to
12 us of our own CPU.

The request still gets its own id, access line, request metrics and, for a GET, its pull event: a
handler marks an answer with `keep(request, replay, until)`, where `replay` is what must happen each
time the answer is given again and `until` the time (POSIX seconds) after which it must be computed
again (a blob HEAD refreshes the blob's link once the link is old).

Nothing is kept, and every request goes the whole way:
- while the index gives no version: PostgreSQL, where every request reads the committed state;
- with auth or a rate limit: who may pull, and how often, is decided per request (Registry.build);
- for requests an answer could depend on beyond method, path and Accept: a query string, a Range
  header, a body; and for requests whose headers the header limit refuses;
- for answers no handler marked, or that are not a 200 with one body message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from registry.limits.headers import header_size
from registry.storage.content import SMALL_BLOB
from registry.unchanged import KeptWhileUnchanged

# Where a handler's mark waits in the scope for the observe layer.
KEEP = "registry.keep"
_METHODS = ("GET", "HEAD")
# Request headers that change an answer (a range) or mean a body comes: such requests go the whole way.
_UNKEPT = frozenset({b"range", b"content-length", b"transfer-encoding"})

Replay = Callable[[], None]
Key = tuple[Any, ...]


def keep(request: Request, replay: Replay | None = None, until: float = math.inf) -> None:
    """Mark this request's answer as one that may be given again while the index is unchanged."""
    request.scope[KEEP] = (replay, until)


@dataclass(frozen=True, slots=True)
class Answer:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    # What the access line and the request metrics read from the scope (route name, repository).
    route: Any
    path_params: dict[str, Any]
    replay: Replay | None
    until: float


@dataclass(frozen=True, slots=True)
class Miss:
    """A request that could have been answered from memory: where its answer is to be kept."""

    version: bytes
    key: Key


class KeptAnswers:
    MAX_ENTRIES = 4096
    # A small blob's GET included: its body is the bytes object the store keeps anyway.
    MAX_ENTRY = SMALL_BLOB + 64 * 1024
    MAX_TOTAL = 16 * 1024 * 1024

    def __init__(
        self, version: Callable[[], bytes | None], max_header_size: int, max_total: int = MAX_TOTAL
    ) -> None:
        self._version = version
        self._max_header_size = max_header_size
        self._answers: KeptWhileUnchanged[Key, Answer] = KeptWhileUnchanged(
            self.MAX_ENTRIES, self.MAX_ENTRY, max_total
        )

    def find(self, scope: Scope) -> Answer | Miss | None:
        """The kept answer to this request; a Miss if it has none but could; None if it never could."""
        method = scope["method"]
        if method not in _METHODS or scope["query_string"]:
            return None
        accept = []
        for name, value in scope["headers"]:
            if name == b"accept":
                accept.append(value)
            elif name in _UNKEPT:
                return None
        if header_size(scope) > self._max_header_size:
            return None
        version = self._version()
        if version is None:
            return None
        key = (method, scope["path"], *accept)
        answer = self._answers.get(version, key)
        if answer is None or answer.until <= time.time():
            return Miss(version, key)
        return answer

    def keep(
        self, miss: Miss, scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """Keep the answer a request that missed got, if its handler marked it."""
        mark = scope.get(KEEP)
        if mark is None or status != 200:
            return
        replay, until = mark
        answer = Answer(headers, body, scope["route"], scope["path_params"], replay, until)
        size = len(body) + sum(len(name) + len(value) for name, value in headers)
        self._answers.keep(miss.version, miss.key, answer, size)
