"""`registry import`: a root filesystem tarball becomes a one-layer image, as with `docker import`.

The input may be a plain tar or compressed (gzip, zstd, bzip2, xz). It is decompressed once, in a stream:
the tar bytes are hashed (the layer's diff_id) and recompressed with gzip (the layer blob the store and a
later push use), so a tarball of any size never sits in memory. `--change` takes the Dockerfile
instructions Docker's import takes, for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL,
USER, VOLUME, WORKDIR.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import shlex
import tarfile
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, BinaryIO, Final, Protocol

import zstandard

from registry.client.media import GZIP_MAGIC, OCI_LAYER_GZIP, ZSTD_MAGIC, blob_descriptor, image_manifest
from registry.client.platforms import Platform
from registry.client.store import ImageStore, LocalImage, StoreError

_PIECE: Final = 1 << 20
_GZIP_LEVEL: Final = 6  # Go's gzip.DefaultCompression, what Docker pushes with
_BZIP2_MAGIC: Final = b"BZh"
_XZ_MAGIC: Final = b"\xfd7zXZ\x00"


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def decompressed(source: BinaryIO) -> _Readable:
    """`source` as the tar bytes it carries, whatever it was compressed with."""
    buffered = source if isinstance(source, io.BufferedReader) else io.BufferedReader(source)  # type: ignore[arg-type]
    head = buffered.peek(6)[:6]
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=buffered)
    if head.startswith(ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().stream_reader(buffered)
    if head.startswith(_BZIP2_MAGIC):
        return bz2.BZ2File(buffered)
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(buffered)
    return buffered


def _check_tar(block: bytes) -> None:
    try:
        tarfile.TarInfo.frombuf(block.ljust(tarfile.BLOCKSIZE, b"\0"), "utf-8", "surrogateescape")
    except tarfile.EOFHeaderError:
        return  # an empty archive: an empty root filesystem
    except tarfile.HeaderError as error:
        raise StoreError(f"the input is not a tar archive ({error})") from None


def write_layer(source: BinaryIO, target: BinaryIO) -> tuple[str, str, int]:
    """Stream `source` into `target` as a gzip layer; returns (diff_id, digest, size) of the layer."""
    tar = decompressed(source)
    diff = hashlib.sha256()
    blob = hashlib.sha256()
    size = 0
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
    first = True
    while True:
        chunk = tar.read(_PIECE)
        if first:
            _check_tar(chunk[: tarfile.BLOCKSIZE])
            first = False
        if not chunk:
            break
        diff.update(chunk)
        out = compressor.compress(chunk)
        blob.update(out)
        target.write(out)
        size += len(out)
    out = compressor.flush()
    blob.update(out)
    target.write(out)
    size += len(out)
    return "sha256:" + diff.hexdigest(), "sha256:" + blob.hexdigest(), size


def _command(value: str) -> list[str]:
    """A JSON array as is; Dockerfile's shell form runs under /bin/sh -c."""
    if value.lstrip().startswith("["):
        try:
            command = json.loads(value)
        except ValueError as error:
            raise ValueError(f"invalid JSON array {value!r}: {error}") from None
        if isinstance(command, list) and all(isinstance(part, str) for part in command):
            return command
    return ["/bin/sh", "-c", value]


def _pairs(value: str) -> list[tuple[str, str]]:
    """`KEY=VALUE ...` (quotes allowed), or Dockerfile's older `KEY VALUE` form."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return [(words[0], value.split(None, 1)[1] if len(words) > 1 else "")]
    if stray := [word for word in words if "=" not in word]:
        raise ValueError(f"{stray[0]!r} in {value!r} is not KEY=VALUE (quote values with spaces)")
    return [(key, val) for key, _, val in (word.partition("=") for word in words)]


def apply_changes(config: dict[str, Any], changes: Iterable[str]) -> None:
    """Apply `--change` Dockerfile instructions to the `config` section of an image config."""
    for change in changes:
        instruction, _, value = change.strip().partition(" ")
        value = value.strip()
        match instruction.upper():
            case "CMD":
                config["Cmd"] = _command(value)
            case "ENTRYPOINT":
                config["Entrypoint"] = _command(value)
            case "ENV":
                env = dict(item.split("=", 1) for item in config.get("Env", []))
                env.update(_pairs(value))
                config["Env"] = [f"{key}={val}" for key, val in env.items()]
            case "LABEL":
                config.setdefault("Labels", {}).update(_pairs(value))
            case "EXPOSE":
                for port in value.split():
                    config.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
            case "VOLUME":
                paths = json.loads(value) if value.startswith("[") else value.split()
                for path in paths:
                    config.setdefault("Volumes", {})[path] = {}
            case "STOPSIGNAL":
                config["StopSignal"] = value
            case "USER":
                config["User"] = value
            case "WORKDIR":
                config["WorkingDir"] = value
            case _:
                raise ValueError(
                    f"{instruction!r} is not a change import accepts "
                    "(CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
                )


def import_rootfs(
    store: ImageStore,
    source: BinaryIO,
    reference: str | None = None,
    changes: Iterable[str] = (),
    message: str | None = None,
    platform: Platform | None = None,
) -> LocalImage:
    platform = platform or Platform.host()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    container_config: dict[str, Any] = {}
    apply_changes(container_config, changes)
    with store.lease():
        staged = store.temporary_file()
        try:
            with open(staged, "wb") as target:
                diff_id, digest, size = write_layer(source, target)
            history: dict[str, Any] = {"created": created, "created_by": "registry import"}
            if message:
                history["comment"] = message
            config: dict[str, Any] = {
                "created": created,
                "architecture": platform.architecture,
                "os": platform.os,
                **({"variant": platform.variant} if platform.variant else {}),
                "config": container_config,
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [history],
            }
            config_bytes = json.dumps(config).encode()
            manifest = image_manifest(config_bytes, [blob_descriptor(OCI_LAYER_GZIP, digest, size)])
            store.commit_blob(staged, digest, verified=True)
            return store.add_image(reference, json.dumps(manifest).encode(), config_bytes)
        finally:
            staged.unlink(missing_ok=True)
