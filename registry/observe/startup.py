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
        f"s3 bucket {settings.s3_bucket}" if settings.storage == "s3" else f"filesystem {settings.blob_root}"
    )
    metrics = "off"
    if settings.metrics_enabled:
        metrics = f"http://{settings.metrics_listen}/metrics" if settings.metrics_listen else "/metrics"
    return (
        f"registry listening on {settings.scheme}://{settings.listen} ({', '.join(addresses)}; {server}, "
        f"{workers} worker(s)), "
        f"auth {settings.auth}, storage {storage}, index {_index(settings.index_url)}, metrics {metrics}, "
        f"data in {settings.data_dir}"
    )
