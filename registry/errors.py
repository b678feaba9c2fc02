"""The distribution-spec error codes, declared once, as Distribution keeps them.

Every 4xx/5xx the API sends is a `RegistryError` raised with one of these codes; the API layer turns it
into the spec's body `{"errors": [{"code", "message", "detail"}]}`. Keeping status and message beside
the code means a handler cannot send a code with the wrong status.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    status: int
    message: str


class ErrorCode(enum.Enum):
    BLOB_UNKNOWN = ErrorSpec(404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = ErrorSpec(400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = ErrorSpec(404, "blob upload unknown to registry")
    DIGEST_INVALID = ErrorSpec(400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = ErrorSpec(400, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = ErrorSpec(400, "manifest invalid")
    MANIFEST_UNKNOWN = ErrorSpec(404, "manifest unknown to registry")
    NAME_INVALID = ErrorSpec(400, "invalid repository name")
    NAME_UNKNOWN = ErrorSpec(404, "repository name not known to registry")
    SIZE_INVALID = ErrorSpec(400, "provided length did not match content length")
    UNAUTHORIZED = ErrorSpec(401, "authentication required")
    DENIED = ErrorSpec(403, "requested access to the resource is denied")
    UNSUPPORTED = ErrorSpec(400, "the operation is unsupported")
    TOOMANYREQUESTS = ErrorSpec(429, "too many requests")
    # Not in the spec's table, but Distribution answers these and clients understand them.
    RANGE_INVALID = ErrorSpec(416, "requested range not satisfiable")
    PAGINATION_NUMBER_INVALID = ErrorSpec(400, "invalid number of results requested")
    UNAVAILABLE = ErrorSpec(503, "service unavailable")
    INSUFFICIENT_STORAGE = ErrorSpec(507, "the registry is out of storage space; nothing was kept")
    INTERNAL = ErrorSpec(500, "internal server error")

    @property
    def status(self) -> int:
        return self.value.status

    @property
    def message(self) -> str:
        return self.value.message


class RegistryError(Exception):
    """An error the client should see; `headers` lets e.g. a 416 carry the upload's current Range."""

    def __init__(
        self,
        code: ErrorCode,
        detail: Any = None,
        *,
        message: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code.message)
        self.code = code
        self.detail = detail
        self.message = message or code.message
        self.status = status or code.status
        self.headers = headers or {}

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code.name, "message": self.message}
        entry["detail"] = self.detail if self.detail is not None else {}
        return json.dumps({"errors": [entry]}).encode()


def error_response(error: RegistryError) -> Response:
    """The spec's error body with the error's status and headers: every layer that refuses a request
    (limits, read-only, auth, the handlers' exception handler) answers through this one function."""
    return Response(error.body(), error.status, headers=error.headers, media_type="application/json")


def too_many_logins(retry_after: float) -> Response:
    """Too many failed logins from one address (the auth layer's and the token service's answer)."""
    seconds = str(max(1, math.ceil(retry_after)))
    error = RegistryError(
        ErrorCode.TOOMANYREQUESTS, {"retryAfter": seconds}, headers={"Retry-After": seconds}
    )
    return error_response(error)
