"""Opening the registry's data for a command: the data folder, the index's database, its schema.

A mistyped --data-dir must not quietly become a new, empty registry (`registry user add` would then
add a user nobody's server sees): only `serve` (a first start) and `migrate --create` make one; every
other command wants the registry it names to exist.
"""

from __future__ import annotations

from registry.cli.failures import database_errors, index_failure
from registry.config import Settings


def prepare(settings: Settings, create: bool = False) -> None:
    """Check (or, with `create`, make) the data folders, wait for the database, bring the schema up to
    date (under a lock, so replicas starting together on one database take turns)."""
    from registry.index.migrate import upgrade
    from registry.index.wait import wait_for_database

    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.storage.kind == "filesystem":
            settings.blob_root.mkdir(parents=True, exist_ok=True)
    else:
        require_index(settings)
    try:
        wait_for_database(settings.index_url, settings.database.wait)
        upgrade(settings.index_url)
    except (OSError, *database_errors()) as error:
        raise index_failure(settings, error) from None


def require_index(settings: Settings) -> None:
    """An embedded (SQLite) index must already exist in the data folder."""
    if settings.database.url:
        return
    index = settings.data_dir / "index.db"
    if not index.is_file():
        where = "no registry" if not settings.data_dir.exists() else "no index"
        raise ValueError(
            f"{where} at {settings.data_dir}: check --data-dir (REGISTRY_DATA_DIR, data_dir), or make a new "
            "one with `registry migrate --create` (or a first `registry serve`)"
        )


def require_blob_store(settings: Settings) -> None:
    """A filesystem blob store must already exist (commands that read or delete blobs)."""
    if settings.storage.kind == "filesystem" and not settings.blob_root.is_dir():
        raise ValueError(f"no blob store at {settings.blob_root}: check --data-dir or storage_root")
