"""`registry system df`: the space the local store uses, each blob counted once however many images
share it, and what `image prune` would give back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from registry.client.store import ImageListing, ImageStore


@dataclass(frozen=True)
class ImageUsage:
    listing: ImageListing
    shared: int  # bytes of its blobs that other images use too
    unique: int  # bytes only this image uses: what removing it frees


@dataclass(frozen=True)
class DiskUsage:
    images: list[ImageUsage]
    dangling: int
    size: int  # every byte under blobs/ and staging/
    reclaimable: int  # bytes no tagged image needs


def _files(folder: Path) -> dict[str, int]:
    """Sizes of the files under `folder`, keyed `algorithm:hex` for blobs (the path below `folder`)."""
    if not folder.is_dir():
        return {}
    return {
        ":".join(path.relative_to(folder).parts): path.stat().st_size
        for path in folder.rglob("*")
        if path.is_file()
    }


def _blobs_of(listing: ImageListing) -> set[str]:
    image = listing.image
    return {image.manifest_digest, image.config_digest, *(layer.digest for layer in image.layers)}


def disk_usage(store: ImageStore) -> DiskUsage:
    listings = store.list_images()
    sizes = _files(store.blobs)
    staged = sum(_files(store.staging).values())
    users = Counter(digest for listing in listings for digest in _blobs_of(listing))
    needed = {digest for listing in listings if listing.references for digest in _blobs_of(listing)}
    images = []
    for listing in listings:
        blobs = _blobs_of(listing)
        shared = sum(sizes.get(digest, 0) for digest in blobs if users[digest] > 1)
        unique = sum(sizes.get(digest, 0) for digest in blobs if users[digest] == 1)
        images.append(ImageUsage(listing, shared, unique))
    size = sum(sizes.values()) + staged
    return DiskUsage(
        images=images,
        dangling=sum(1 for listing in listings if not listing.references),
        size=size,
        reclaimable=size - sum(sizes.get(digest, 0) for digest in needed),
    )
