"""The unpacked size of an image, as `docker images` shows it: the bytes of the files its layers hold
(each layer's regular files, as Docker's layer store counts them when it applies a layer), not what the
compressed blobs take. Counting means reading a layer's tar once; the count is kept in the store, so
only the first listing after a pull pays for it.
"""

from __future__ import annotations

import tarfile

from registry.client.errors import ClientError
from registry.client.store import ImageStore, LocalImage
from registry.unpack.streams import CORRUPT, LayerStream


def _count(store: ImageStore, digest: str, diff_id: str) -> int:
    stream = LayerStream(store.blob_path(digest), digest, diff_id, lambda _: None)
    try:
        with tarfile.open(fileobj=stream.tar, mode="r|") as tar:  # type: ignore[call-overload]
            return sum(member.size for member in tar if member.isreg())
    except CORRUPT as error:
        raise ClientError(f"layer {digest} in the local store is corrupt: {error}") from error
    finally:
        stream.close()


def unpacked_size(store: ImageStore, image: LocalImage) -> int:
    known = store.unpacked_sizes()
    missing = {
        layer.digest: _count(store, layer.digest, layer.diff_id or layer.digest)
        for layer in image.layers
        if layer.digest not in known
    }
    if missing:
        store.add_unpacked_sizes(missing)
    return sum({**known, **missing}[layer.digest] for layer in image.layers)
