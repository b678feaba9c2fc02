"""Where a request came from, and the URL the client used to reach us, also behind a reverse proxy.

The public URL (for the token realm, the only absolute URL the registry sends: `Location` headers are
relative) comes from the configured external URL, else from `X-Forwarded-Proto`/`X-Forwarded-Host`, else
from the request itself. Forwarded values are only used when they look like a scheme and a host, so a
client cannot inject text into a challenge header; and since a client can only misdirect its own
challenge this way, they need no trust. The client address is different (it feeds the audit log and
login rate limits), so `X-Forwarded-For` is believed only from the configured trusted proxies.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

_HOST = re.compile(r"[A-Za-z0-9.-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def public_base_url(scope: Any, external_url: str = "") -> str:
    if external_url:
        return external_url.rstrip("/")
    proto = (_header(scope, b"x-forwarded-proto") or "").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = scope.get("scheme", "http")
    for candidate in (_header(scope, b"x-forwarded-host"), _header(scope, b"host")):
        host = (candidate or "").split(",")[0].strip()
        if _HOST.fullmatch(host):
            return f"{proto}://{host}"
    server_host, port = scope.get("server") or ("127.0.0.1", 0)
    host = f"[{server_host}]" if ":" in server_host else server_host
    return f"{proto}://{host}:{port}"


def client_address(scope: Any, trusted_proxies: Collection[str] = ()) -> str:
    """The peer's address; behind trusted proxies, the nearest `X-Forwarded-For` hop that is not one."""
    address = (scope.get("client") or ("-", 0))[0]
    if address not in trusted_proxies:
        return address
    hops = [hop.strip() for hop in (_header(scope, b"x-forwarded-for") or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop
    return hops[0] if hops else address
