"""The access log: one line per request, logger `registry.access`.

Text lines follow the common log format (address, user, time, request line, status, bytes sent) and add
the duration and the repository; the request id is in front, as on every line. JSON lines carry the
same as fields. The path is the raw one the client sent (still percent-encoded), so no decoded newline
or quote can break a line; the user name and user agent are escaped for the same reason.

Written directly, not through `logging`, when the registry's own stderr handler is the only place the
line would go (the usual case): the line is formatted here in one f-string, with the two time stamps
remade once a second, and lines are buffered: written together at most `FLUSH_DELAY` seconds after the
first of them, as soon as `FLUSH_SIZE` characters wait, and when the server shuts down (the observe
layer flushes at the lifespan's end). Through `logging` (a record, the filter, `Formatter`, a write and
flush per line) a line cost about as much CPU as the rest of a manifest GET; the write system call
alone was most of it. The price: a worker killed outright loses its last `FLUSH_DELAY` of access lines.
A hosting server or a test that set up its own handlers, or a level above INFO for the logger, gets
the records through `logging` as before.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from registry.observe.context import RequestContext
from registry.observe.logformat import FIELDS_ATTRIBUTE, RequestIdFilter

log = logging.getLogger("registry.access")
FLUSH_DELAY = 0.2
FLUSH_SIZE = 64 * 1024
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
    # Most text needs no escape: three C-level scans are a seventh of what `translate` costs.
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text or "-"
    return text.translate(_ESCAPES)


def _header(scope: Any, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


class _Stamps:
    """The log line's time (as logging's default `asctime`) and the common log format's, per second."""

    __slots__ = ("common", "local", "second")

    def __init__(self) -> None:
        self.second = -1
        self.local = self.common = ""

    def at(self, now: float) -> None:
        second = int(now)
        if second != self.second:
            moment = time.localtime(second)
            self.second = second
            self.local = time.strftime("%Y-%m-%d %H:%M:%S", moment)
            self.common = time.strftime("%d/%b/%Y:%H:%M:%S %z", moment)


class AccessLog:
    """Formats each request's line; writes it to `stream` (batched per event-loop turn) or, without
    one, logs it through `logging`."""

    def __init__(self, stream: TextIO | None, json_lines: bool) -> None:
        self.stream = stream
        self.json_lines = json_lines
        self._stamps = _Stamps()
        self._pending: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        if stream is not None:
            atexit.register(self.flush)

    def write(self, context: RequestContext, outcome: Outcome) -> None:
        scope = context.scope
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = (raw_path + b"?" + query if query else raw_path).decode("latin-1")
        protocol = "HTTP/" + scope.get("http_version", "1.1")
        agent = _header(scope, b"user-agent")
        user, repository = context.actor, context.repository
        now = time.time()
        self._stamps.at(now)
        message = (
            f"{context.address} - {_escaped(user)} [{self._stamps.common}] "
            f'"{_escaped(scope["method"])} {_escaped(target)} {protocol}" {outcome.status} '
            f'{outcome.sent or "-"} "{_escaped(agent)}" {outcome.duration:.3f}s '
            f"repository={_escaped(repository)}"
        )
        if self.stream is None or self.json_lines:
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
            if self.stream is None:
                log.info("%s", message, extra={FIELDS_ATTRIBUTE: fields})
                return
            line = {
                "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                "level": "info",
                "logger": log.name,
                "msg": message,
                "request_id": context.request_id,
                **fields,
            }
            self._queue(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            return
        millis = int((now - int(now)) * 1000)
        self._queue(f"{self._stamps.local},{millis:03d} INFO {log.name} [{context.request_id}] {message}\n")

    def _queue(self, line: str) -> None:
        self._pending.append(line)
        self._size += len(line)
        if self._size >= FLUSH_SIZE:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)
            except RuntimeError:  # no event loop (a direct call): nothing would flush later
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and self.stream is not None:
            lines, self._pending, self._size = "".join(self._pending), [], 0
            self.stream.write(lines)
            self.stream.flush()


def open_access_log(formatter: str) -> AccessLog:
    """The access log, written directly when nothing but the registry's own handler would see its
    records (see the module's docstring)."""
    root = logging.getLogger()
    ours = len(root.handlers) == 1 and any(isinstance(f, RequestIdFilter) for f in root.handlers[0].filters)
    handler = root.handlers[0] if ours else None
    direct = (
        isinstance(handler, logging.StreamHandler)
        and handler.level <= logging.INFO
        and not log.handlers
        and log.propagate
        and log.isEnabledFor(logging.INFO)
    )
    return AccessLog(handler.stream if direct else None, formatter == "json")
