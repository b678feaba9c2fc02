"""The hint `serve` gives on a data folder (or storage root) that holds Distribution's layout while the
index is empty: the operator pointed this registry at Distribution's data and needs one command more."""

from __future__ import annotations

import asyncio

from registry.config import Settings
from registry.importer.layout import holds_repositories


async def _index_is_empty(settings: Settings) -> bool:
    from registry.index.sql import SQLIndex

    index = SQLIndex(settings.index_url)
    await index.open()
    try:
        return not await index.list_repositories(1, None)
    finally:
        await index.close()


def distribution_hint(settings: Settings) -> str | None:
    """One line saying where Distribution's data is and how to import it, or None."""
    places = [settings.data_dir]
    if settings.storage.kind == "filesystem":
        places.insert(0, settings.blob_root)
    found = next((place for place in places if holds_repositories(place)), None)
    if found is None or not asyncio.run(_index_is_empty(settings)):
        return None
    return (
        f"{found} holds a Distribution registry's data (docker/registry/v2) and the index is empty: "
        f"nothing of it is served until imported with `registry import-distribution {found}` "
        "(with the same settings)"
    )
