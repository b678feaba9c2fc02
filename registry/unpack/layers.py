"""Applying an image's layers, in order, into a root filesystem directory."""

from __future__ import annotations

import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from registry.unpack.apply import BoundedTarInfo, LayerApplier, Options
from registry.unpack.errors import UnpackError
from registry.unpack.limits import Budget
from registry.unpack.streams import CHUNK, CORRUPT, LayerStream


class LayerBlob(Protocol):
    """A layer as the local image store gives it (its `LayerRef`): the blob's digest, type and file."""

    @property
    def digest(self) -> str: ...

    @property
    def media_type(self) -> str: ...

    @property
    def path(self) -> Path: ...


def is_layer_type(media_type: str) -> bool:
    """OCI and Docker layer types (also non-distributable ones) are tars; encrypted ones cannot be read."""
    return "tar" in media_type and not media_type.endswith("+encrypted")


def apply_layer(layer: LayerBlob, diff_id: str, root: Path, options: Options, budget: Budget) -> None:
    if not is_layer_type(layer.media_type):
        raise UnpackError(layer.digest, f"media type {layer.media_type!r} is not a layer")
    stream = LayerStream(
        layer.path, layer.digest, diff_id, lambda count: budget.charge_bytes(layer.digest, count)
    )
    try:
        with tarfile.open(fileobj=stream.tar, mode="r|", bufsize=CHUNK, tarinfo=BoundedTarInfo) as archive:
            LayerApplier(root, layer.digest, options, budget).apply(archive)
        stream.verify()
    except CORRUPT as error:
        raise UnpackError(layer.digest, f"corrupt layer: {error}") from error
    finally:
        stream.close()


def unpack_layers(
    layers: Sequence[LayerBlob], diff_ids: Sequence[str], root: Path, options: Options | None = None
) -> None:
    """Apply `layers` onto `root` (which must exist), checking each against its diff_id from the config.

    On an error, `root` holds a partial result and should be thrown away.
    """
    if len(diff_ids) != len(layers):
        raise ValueError(f"the image has {len(layers)} layers but its config lists {len(diff_ids)} diff_ids")
    options = options or Options()
    budget = Budget(options.limits)
    for layer, diff_id in zip(layers, diff_ids, strict=True):
        apply_layer(layer, diff_id, root, options, budget)
