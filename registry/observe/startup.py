"""The start line: what an operator needs to know a server came up as meant, in one line."""

from __future__ import annotations

from urllib.parse import urlsplit

from registry.config import Settings


def _index(url: str) -> str:
    """The index's database without its password (SQLAlchemy is not loaded in the supervisor)."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return "sqlite " + url.partition(":///")[2]
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.split('+')[0]}://{host}{port}{parts.path}"


def start_line(settings: Settings, server: str, workers: int, addresses: list[str]) -> str:
    storage = (
        f"s3 bucket {settings.storage.s3.bucket}"
        if settings.storage.kind == "s3"
        else f"filesystem {settings.blob_root}"
    )
    metrics = "off"
    if settings.http.debug.prometheus.enabled:
        metrics = f"http://{settings.http.debug.addr}/metrics" if settings.http.debug.addr else "/metrics"
    return (
        f"registry listening on {settings.scheme}://{settings.http.addr} ({', '.join(addresses)}; {server}, "
        f"{workers} worker(s)), auth {settings.auth.kind}, storage {storage}, "
        f"index {_index(settings.index_url)}, metrics {metrics}, data in {settings.data_dir}"
    )
