"""The step cache: what each build step produced, found again by a key of what went into it.

As with Docker's, a step's key folds together its parent's key (so everything before it in the stage:
the base image by digest and every earlier step), the instruction as expanded, and what it reads: the
checksum of the files COPY and ADD take, the build arguments RUN sees. A hit gives back the step's layer
(if it made one) and the time it was first made, so a rebuild of an unchanged Dockerfile and context
makes the very same image, digest included.

    <client root>/build-cache/<key hex>.json    {"created": ..., "layer": {"digest", "diff_id", "size"}}

An entry whose layer blob has left the store (`image prune`, `rmi`) is a miss, and the step runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from registry.build.layers import BuiltLayer
from registry.client.store import ImageStore


def step_key(parent: str, *parts: str) -> str:
    return "sha256:" + hashlib.sha256(json.dumps([parent, *parts]).encode()).hexdigest()


@dataclass(frozen=True)
class CachedStep:
    created: str
    layer: BuiltLayer | None


@dataclass(frozen=True)
class CacheUsage:
    """`system df`'s Build Cache row: entries still usable, those whose layer a local image holds
    (active), the bytes of their layers, and the bytes no image holds (the next `rmi` or `image prune`
    frees them, and the entries become misses)."""

    entries: int
    active: int
    size: int
    reclaimable: int


class StepCache:
    def __init__(self, store: ImageStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self.root = store.root / "build-cache"

    def _path(self, key: str) -> Path:
        return self.root / f"{key.removeprefix('sha256:')}.json"

    def get(self, key: str) -> CachedStep | None:
        if not self.enabled:
            return None
        try:
            record = json.loads(self._path(key).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        layer = record.get("layer")
        if layer is None:
            return CachedStep(record["created"], None)
        if not self.store.has_blob(layer["digest"]):
            return None
        path = self.store.blob_path(layer["digest"])
        return CachedStep(
            record["created"], BuiltLayer(layer["digest"], layer["diff_id"], layer["size"], path)
        )

    def put(self, key: str, step: CachedStep) -> None:
        """Record a step (also with --no-cache: the next build may use it)."""
        layer = step.layer
        record = {
            "created": step.created,
            "layer": None
            if layer is None
            else {"digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size},
        }
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, path)

    def usage(self) -> CacheUsage:
        reachable = self.store.reachable_blobs()
        sizes: dict[str, int] = {}
        entries = active = 0
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            step = self.get(f"sha256:{path.stem}")
            if step is None:
                continue  # unreadable, or its layer has left the store: a miss, not cache
            entries += 1
            if step.layer is not None:
                sizes[step.layer.digest] = step.layer.size
                active += step.layer.digest in reachable
        size = sum(sizes.values())
        return CacheUsage(entries, active, size, sum(v for k, v in sizes.items() if k not in reachable))
