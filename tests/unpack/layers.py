"""Hand-made layers for the unpacker's tests: any entry a hostile or unusual tool could write, in a blob
file of the chosen compression, and OCI layouts of such layers for `umoci unpack` to compare against."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from tests.support.images import host_arch

MTIME = 946684800
MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


@dataclass(frozen=True)
class Blob:
    """What the unpacker takes for a layer (the local store's LayerRef has the same fields)."""

    digest: str
    media_type: str
    path: Path
    diff_id: str


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    target: str = "",
    mode: int | None = None,
    uid: int = 0,
    gid: int = 0,
    xattrs: dict[str, str] | None = None,
    device: tuple[int, int] = (0, 0),
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = MTIME
    info.uid, info.gid = uid, gid
    info.linkname = target
    info.devmajor, info.devminor = device
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.pax_headers = {f"SCHILY.xattr.{key}": value for key, value in (xattrs or {}).items()}
    return info, data


def directory(name: str, mode: int = 0o755, **extra: object) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.DIRTYPE, mode=mode, **extra)  # type: ignore[arg-type]


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.SYMTYPE, target=target, mode=0o777)


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.LNKTYPE, target=target)


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return raw.getvalue()


def compress(tar: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(tar)
    return tar


@dataclass
class Blobs:
    """A folder of layer blobs, named by digest as in an OCI layout's blobs/sha256/."""

    root: Path
    layers: list[tuple[bytes, bytes]] = field(default_factory=list)  # (blob, tar) in order

    def add_tar(self, tar: bytes, compression: str = "gzip") -> Blob:
        blob = compress(tar, compression)
        digest = sha256(blob)
        path = self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        self.layers.append((blob, tar))
        return Blob(digest, MEDIA_TYPES[compression], path, sha256(tar))

    def add(self, entries: list[tuple[tarfile.TarInfo, bytes]], compression: str = "gzip") -> Blob:
        return self.add_tar(tar_bytes(entries), compression)

    def write_layout(self, tag: str, compression: str = "gzip") -> None:
        """Make `root` an OCI image layout whose `tag` is an image of every layer added so far."""

        def put(data: bytes, media_type: str) -> dict[str, object]:
            digest = sha256(data)
            (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
            return {"mediaType": media_type, "digest": digest, "size": len(data)}

        config = {
            "architecture": host_arch(),
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar) for _, tar in self.layers]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": put(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
            "layers": [
                {"mediaType": MEDIA_TYPES[compression], "digest": sha256(blob), "size": len(blob)}
                for blob, _ in self.layers
            ],
        }
        descriptor = put(json.dumps(manifest).encode(), manifest["mediaType"])  # type: ignore[arg-type]
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        index = {"schemaVersion": 2, "manifests": [descriptor]}
        (self.root / "index.json").write_text(json.dumps(index))
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


def tree(root: Path) -> dict[str, tuple]:
    """Every path under `root` with what matters to a root filesystem: type, mode, owner, content or
    link target, and which hard-link group it is in (by the first path sharing its inode)."""
    found: dict[str, tuple] = {}
    first_path: dict[int, str] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        name = str(path.relative_to(root))
        if path.is_symlink():
            what: object = ("symlink", str(path.readlink()))
        elif path.is_dir():
            what = ("dir",)
        elif path.is_file():
            what = ("file", path.read_bytes(), first_path.setdefault(info.st_ino, name))
        else:
            what = ("special", info.st_mode >> 12, info.st_rdev)
        found[name] = (what, info.st_mode & 0o7777 if not path.is_symlink() else 0, info.st_uid, info.st_gid)
    return found
