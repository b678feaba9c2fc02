"""Unpacked root filesystems kept per chain of layers, so the second run of an image starts at once.

A cached root is keyed by the OCI ChainID of its layers (the diff_ids folded together), so two images
with the same layers share one. It is built in a private staging folder and renamed into place only when
complete and verified: a failed or interrupted unpack never leaves a half-built root that looks cached,
and two processes unpacking the same image at once both end up using whichever finished first. Cached
roots are read-only by convention: the runtime mounts them as overlayfs lower layers, or copies them.

    <cache>/
      <chain id hex>/        a complete root filesystem
      .staging-XXXXXXXX/     one being unpacked
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from registry.unpack.apply import Options
from registry.unpack.layers import LayerBlob, unpack_layers


def chain_id(diff_ids: Sequence[str]) -> str:
    """ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))."""
    if not diff_ids:
        return "sha256:" + hashlib.sha256(b"").hexdigest()
    chain = diff_ids[0]
    for diff_id in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    return chain


class RootfsCache:
    def __init__(self, root: Path, options: Options | None = None) -> None:
        self.root = root
        self.options = options or Options()

    def path(self, diff_ids: Sequence[str]) -> Path:
        return self.root / chain_id(diff_ids).partition(":")[2]

    def roots(self) -> list[Path]:
        """The complete unpacked roots (not the ones being unpacked right now)."""
        if not self.root.is_dir():
            return []
        return [path for path in self.root.iterdir() if not path.name.startswith(".")]

    def rootfs(self, layers: Sequence[LayerBlob], diff_ids: Sequence[str]) -> Path:
        """The unpacked root of `layers`, unpacking them first unless an earlier call already did."""
        final = self.path(diff_ids)
        if final.is_dir():
            return final
        # Private: unpacked images hold set-user-ID files of any owner, which no other user may reach.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            staging.chmod(0o755)
            unpack_layers(layers, diff_ids, staging, self.options)
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # not another process's win, which is as good as ours
                raise
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return final
