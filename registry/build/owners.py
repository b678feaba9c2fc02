"""Who owns each entry of a layer the build writes, also when the build runs without root.

As root, the staged tree and the RUN container's upper folder carry the true owners. Rootless, they
cannot: an unprivileged user cannot chown, its unpacked roots hold only its own IDs, and RUN's container
maps just that user to root. So a rootless build writes its own IDs as 0, takes the owners COPY gives
from a table instead of the files, and the owners of what the image already had (a folder RUN or COPY
only copied up) from the image's layers themselves, which is what a root build would have written.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from registry.unpack import LayerBlob
from registry.unpack.apply import OPAQUE, WHITEOUT
from registry.unpack.streams import LayerStream


def image_owners(layers: Sequence[LayerBlob], diff_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Path -> (uid, gid) of every entry of the image the layers make, as their tar headers say."""
    owners: dict[str, tuple[int, int]] = {}
    for layer, diff_id in zip(layers, diff_ids, strict=True):
        stream = LayerStream(layer.path, layer.digest, diff_id, lambda _: None)
        try:
            with tarfile.open(fileobj=stream.tar, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    name = posixpath.normpath(member.name.lstrip("/"))
                    parent, _, base = name.rpartition("/")
                    if base == OPAQUE or base.startswith(WHITEOUT):
                        gone = parent if base == OPAQUE else posixpath.join(parent, base[len(WHITEOUT) :])
                        owners = {k: v for k, v in owners.items() if not k.startswith(f"{gone}/")}
                        if base != OPAQUE:
                            owners.pop(gone, None)
                        continue
                    owners[name] = (member.uid, member.gid)
        finally:
            stream.close()
    return owners


@dataclass
class Owners:
    rootless: bool = field(default_factory=lambda: os.geteuid() != 0)
    image: dict[str, tuple[int, int]] = field(default_factory=dict)  # rootless: the lower image's owners
    staged: dict[str, tuple[int, int]] = field(default_factory=dict)  # rootless: what COPY gave

    def chown(self, root: Path, path: Path, uid: int, gid: int) -> None:
        """Give `path` (below `root`) these owners in the layer."""
        if self.rootless:
            self.staged[str(path.relative_to(root))] = (uid, gid)
        else:
            os.chown(path, uid, gid, follow_symlinks=False)

    def keep(self, path: Path, info: os.stat_result) -> None:
        """A folder the image already has, staged again: its owners stay what the image says."""
        if not self.rootless:
            os.chown(path, info.st_uid, info.st_gid)

    def of(self, name: str, info: os.stat_result) -> tuple[int, int]:
        if not self.rootless:
            return info.st_uid, info.st_gid
        if name in self.staged:
            return self.staged[name]
        if name in self.image:
            return self.image[name]
        return (0 if info.st_uid == os.geteuid() else info.st_uid), (
            0 if info.st_gid == os.getegid() else info.st_gid
        )
