"""Each request's id: the one a trusted proxy sent in `X-Request-ID`, so a request can be followed from
the proxy's log into ours, else a new one.

Only a trusted proxy's is believed (the same `trusted_proxies` that vouch for `X-Forwarded-For`): anyone
else could reuse another request's id to muddle the logs, or send text meant to break a log line. Even a
trusted proxy's must look like an id (bounded, plain characters), or it is replaced. Our own ids are
32 hex digits, as before: a random half fixed per process and a counter.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Collection
from typing import Any

HEADER = b"x-request-id"
_PLAIN_ID = re.compile(rb"[A-Za-z0-9._:+=/@-]{1,128}")


def request_id(scope: Any, trusted_proxies: Collection[str]) -> str:
    peer = (scope.get("client") or ("", 0))[0]
    if peer in trusted_proxies:
        for key, value in scope.get("headers", ()):
            if key == HEADER and _PLAIN_ID.fullmatch(value):
                return value.decode()
    return f"{_prefix}{next(_sequence):016x}"


def _reseed() -> None:
    """A random half per process (forked workers included) and a counter: ids unique across workers
    and restarts without a system call per request, as `os.urandom` for each cost."""
    global _prefix, _sequence
    _prefix, _sequence = os.urandom(8).hex(), itertools.count()


_prefix: str
_sequence: itertools.count[int]
_reseed()
os.register_at_fork(after_in_child=_reseed)
