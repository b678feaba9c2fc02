"""An HTTP request's ASGI scope, as a server on 127.0.0.1:5000 builds it, for tests and measurements
that call the app in this process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def http_scope(
    method: str,
    path: str,
    query: str = "",
    headers: Iterable[tuple[bytes, bytes]] = (),
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000),
        "extensions": extensions or {},
        "state": {},
    }
