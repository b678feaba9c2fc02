"""The boundary every response passes and every request's failures stop at: the API version header,
what failures answer, and the one log line each is worth.

Every response, errors included, gets `Docker-Distribution-API-Version`, as clients expect (they
recognise a registry's 401 by it); added here, in the send this layer wraps anyway, rather than by a
layer of its own.

Starlette's ServerErrorMiddleware calls an `Exception` handler and then re-raises for the server to log
too, so every 500 reached the log two or three times over (our handler, hypercorn's "Error in ASGI
Framework"), and a client hanging up mid-body, which is no fault of the server, came out as an
"unhandled error" with tracebacks. This middleware, inside Starlette's, lets nothing through:

- a body cut short (the client left, or sent nothing for `body_read_timeout`) is one INFO line
  (method, path, how much of the body arrived) and a 400 SIZE_INVALID for a client still listening;
  what the handler had received is already rolled back by then;
- a full disk or quota (the blob store's, or the index database's) is one ERROR line naming it and a
  507 INSUFFICIENT_STORAGE: the operator's to fix, not a bug, and the client may retry later; what the
  request wrote is already rolled back by the layers it went through;
- anything else is one ERROR line with its traceback, and a 500 in the spec's format if the response
  has not started (if it has, the server closes the connection, and the client sees a short body).
"""

from __future__ import annotations

import errno
import logging
import sqlite3

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.common import API_VERSION_HEADER
from registry.errors import ErrorCode, RegistryError, error_response

log = logging.getLogger("registry")
_VERSION_HEADER = (API_VERSION_HEADER[0].lower().encode(), API_VERSION_HEADER[1].encode())


class FailureBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), _VERSION_HEADER]
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ClientDisconnect:
            log.info(
                "request body cut short (client disconnected or silent): %s %s, after %d bytes of the body",
                scope["method"],
                scope["path"],
                received,
            )
            if not started:
                cut_short = RegistryError(
                    ErrorCode.SIZE_INVALID, {"reason": "the request body stopped arriving"}
                )
                await error_response(cut_short)(scope, receive, tracking_send)
        except Exception as error:
            if _out_of_space(error):
                log.error("out of storage space: %s %s: %s", scope["method"], scope["path"], error)
                if not started:
                    await error_response(RegistryError(ErrorCode.INSUFFICIENT_STORAGE))(
                        scope, receive, tracking_send
                    )
                return
            log.exception(
                "internal error in %s %s%s",
                scope["method"],
                scope["path"],
                " (the response had started)" if started else "",
            )
            if not started:
                failure = RegistryError(ErrorCode.INTERNAL, {"error": type(error).__name__})
                await error_response(failure)(scope, receive, tracking_send)


# PostgreSQL's SQLSTATE for a full disk (asyncpg's DiskFullError).
_PG_DISK_FULL = "53100"


def _out_of_space(error: BaseException) -> bool:
    """Whether a failure comes down to a full disk or quota, through any wrapping (SQLAlchemy's `orig`,
    exception chaining)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.Error) and (
            getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        ):
            return True
        if getattr(current, "sqlstate", None) == _PG_DISK_FULL:
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return False
