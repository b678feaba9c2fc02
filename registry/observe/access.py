"""The access log: one line per request, logger `registry.access`.

Text lines follow the common log format (address, user, time, request line, status, bytes sent) and add
the duration and the repository; the handler's format puts the request id in front, as on every line.
JSON lines carry the same as fields. The path is the raw one the client sent (still percent-encoded), so
no decoded newline or quote can break a line; the user name and user agent are escaped for the same
reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from registry.observe.context import RequestContext
from registry.observe.logformat import FIELDS_ATTRIBUTE

log = logging.getLogger("registry.access")
# Control characters, quotes and backslashes in client-chosen text, escaped as \xNN.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x22, 0x5C, 0x7F)}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the observe layer saw of one request."""

    status: int
    received: int
    sent: int
    duration: float
    route: str


def _escaped(text: str) -> str:
    return text.translate(_ESCAPES) or "-"


def _header(scope: Any, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def log_access(context: RequestContext, outcome: Outcome) -> None:
    scope = context.scope
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    target = (raw_path + b"?" + query if query else raw_path).decode("latin-1")
    protocol = "HTTP/" + scope.get("http_version", "1.1")
    user = context.actor
    repository = context.repository
    agent = _header(scope, b"user-agent")
    fields = {
        "address": context.address,
        "user": user,
        "method": scope["method"],
        "path": target,
        "protocol": protocol,
        "status": outcome.status,
        "bytes_sent": outcome.sent,
        "bytes_received": outcome.received,
        "duration_seconds": round(outcome.duration, 6),
        "route": outcome.route,
        "repository": repository,
        "user_agent": agent,
    }
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    log.info(
        '%s - %s [%s] "%s %s %s" %d %s "%s" %.3fs repository=%s',
        context.address,
        _escaped(user),
        stamp,
        _escaped(scope["method"]),
        _escaped(target),
        protocol,
        outcome.status,
        outcome.sent or "-",
        _escaped(agent),
        outcome.duration,
        _escaped(repository),
        extra={FIELDS_ATTRIBUTE: fields},
    )
