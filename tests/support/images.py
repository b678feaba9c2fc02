"""Test images built locally, without any network: OCI image layouts holding Debian's static busybox.

Everything is deterministic (fixed mtimes, owners, ordering and gzip headers), so the same inputs always
give the same digests on a given machine. The busybox layer never depends on `extra_files`: those go into
a second layer, so images built with different extra files share their base layer (as images built FROM
the same base do), which lets tests exercise blob reuse and cross-repository mounts.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
from pathlib import Path
from typing import Any

from tests.support.tools import unavailable

OCI_LAYOUT_VERSION = "1.0.0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: a static binary, runs in an empty root
MTIME = 946684800  # 2000-01-01T00:00:00Z
CREATED = "2000-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APPLETS = (
    "cat", "cp", "date", "echo", "env", "false", "grep", "head", "hostname", "id", "ls", "mkdir",
    "mv", "ps", "pwd", "rm", "sh", "sleep", "tail", "touch", "true", "uname", "wc",
)  # fmt: skip
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"

_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "i686": "386",
    "i386": "386",
}


def host_arch() -> str:
    """The host's architecture, spelled as in OCI platforms (GOARCH)."""
    machine = platform.machine().lower()
    return _GOARCH.get(machine, machine)


def foreign_arch() -> str:
    """Some architecture that is not the host's, for the second manifest of a multi-arch index."""
    return "arm64" if host_arch() != "arm64" else "amd64"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode() + b"\n"


# ---------------------------------------------------------------------------------------------- layers


def _tar_entry(name: str, kind: bytes, mode: int, data: bytes = b"", target: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.linkname = target
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _layer(entries: list[tuple]) -> tuple[bytes, bytes]:
    """(gzip blob, uncompressed tar): the blob's digest names the layer, the tar's is its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    tar = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as stream:
        stream.write(tar)
    return compressed.getvalue(), tar


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _files_layer(files: dict[str, bytes | str]) -> tuple[bytes, bytes]:
    """A layer holding `files` (absolute or relative paths; str content is UTF-8), with their parents."""
    normalized = {
        path.strip("/"): content.encode() if isinstance(content, str) else content
        for path, content in files.items()
    }
    directories = sorted({parent for path in normalized for parent in _parents(path)})
    entries = [_tar_entry(d + "/", tarfile.DIRTYPE, 0o755) for d in directories]
    entries += [_tar_entry(p, tarfile.REGTYPE, 0o644, normalized[p]) for p in sorted(normalized)]
    return _layer(entries)


def _busybox_binary() -> bytes:
    if not BUSYBOX.is_file():
        unavailable(f"{BUSYBOX} is missing (install Debian's busybox-static)")
    return BUSYBOX.read_bytes()


def _busybox_layer() -> tuple[bytes, bytes]:
    entries = [
        _tar_entry("bin/", tarfile.DIRTYPE, 0o755),
        _tar_entry("bin/busybox", tarfile.REGTYPE, 0o755, _busybox_binary()),
    ]
    entries += [_tar_entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, target="busybox") for applet in APPLETS]
    entries += [
        _tar_entry("etc/", tarfile.DIRTYPE, 0o755),
        _tar_entry("etc/group", tarfile.REGTYPE, 0o644, GROUP),
        _tar_entry("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD),
        _tar_entry("root/", tarfile.DIRTYPE, 0o700),
        _tar_entry("tmp/", tarfile.DIRTYPE, 0o1777),
        _tar_entry("usr/", tarfile.DIRTYPE, 0o755),
        _tar_entry("usr/bin/", tarfile.DIRTYPE, 0o755),
        _tar_entry("var/", tarfile.DIRTYPE, 0o755),
    ]
    return _layer(entries)


# ---------------------------------------------------------------------------------------------- layouts


class _Layout:
    """Writes content-addressed blobs, then an index.json, into an OCI image layout directory."""

    def __init__(self, dest: Path) -> None:
        self.root = Path(dest)
        self.blobs = self.root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_bytes(_json({"imageLayoutVersion": OCI_LAYOUT_VERSION}))

    def blob(self, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
        digest = sha256(data)
        (self.blobs / digest.removeprefix("sha256:")).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def image(self, arch: str, layers: list[tuple[bytes, bytes]], variant: str = "", **extra: Any) -> dict:
        """Write an image (layers, config, manifest); return the manifest's descriptor with its platform."""
        layer_descriptors = [self.blob(blob, OCI_LAYER) for blob, _ in layers]
        config: dict[str, Any] = {
            "created": CREATED,
            "architecture": arch,
            "os": "linux",
            "config": {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/", **extra},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar) for _, tar in layers]},
            "history": [
                {"created": CREATED, "created_by": f"tests.support.images layer {i}"}
                for i in range(len(layers))
            ],
        }
        if variant:
            config["variant"] = variant
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(_json(config), OCI_CONFIG),
            "layers": layer_descriptors,
        }
        platform_ = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        return self.blob(_json(manifest), OCI_MANIFEST, platform=platform_)

    def write_index(self, descriptors: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        (self.root / "index.json").write_bytes(_json(index))


def _tagged(descriptor: dict[str, Any], tag: str) -> dict[str, Any]:
    tagged = {key: value for key, value in descriptor.items() if key != "platform"}
    tagged["annotations"] = {REF_NAME: tag}
    return tagged


def build_busybox_layout(
    dest: Path, tag: str = "1", extra_files: dict[str, bytes | str] | None = None
) -> Path:
    """An OCI layout at `dest` with one image, `tag`, for the host architecture: busybox (+ extra layer).

    The image runs `sh` by default, so `run IMAGE echo hello` works. `extra_files` (path -> content) go
    into a second layer; the first (busybox) layer is the same in every image built here.
    """
    layout = _Layout(dest)
    layers = [_busybox_layer()]
    if extra_files:
        layers.append(_files_layer(extra_files))
    layout.write_index([_tagged(layout.image(host_arch(), layers), tag)])
    return layout.root


def build_multiarch_layout(dest: Path, tag: str = "multi") -> Path:
    """An OCI layout at `dest` whose `tag` is an image index of two images: host arch and a foreign one.

    The host image is the busybox image (runnable); the foreign one holds a small dummy layer.
    """
    layout = _Layout(dest)
    arch = foreign_arch()
    manifests = [
        layout.image(host_arch(), [_busybox_layer()]),
        layout.image(
            arch,
            [_files_layer({"/etc/arch": f"{arch}\n", "/README": "dummy layer of a foreign platform\n"})],
            variant="v8" if arch == "arm64" else "",
        ),
    ]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    layout.write_index([_tagged(layout.blob(_json(index), OCI_INDEX), tag)])
    return layout.root


# ---------------------------------------------------------------------------------------------- reading


def layout_descriptor(layout: Path, tag: str) -> dict[str, Any]:
    """The descriptor index.json gives for `tag` (the ref.name annotation)."""
    index = json.loads((Path(layout) / "index.json").read_bytes())
    for descriptor in index["manifests"]:
        if descriptor.get("annotations", {}).get(REF_NAME) == tag:
            return descriptor
    raise KeyError(f"no {tag!r} in {layout}/index.json")


def read_blob(layout: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return (Path(layout) / "blobs" / algorithm / hexdigest).read_bytes()


def reachable_blobs(layout: Path, tag: str) -> dict[str, bytes]:
    """digest -> bytes of every blob reachable from `tag`: manifests, indexes, configs and layers."""
    found: dict[str, bytes] = {}
    pending = [layout_descriptor(layout, tag)]
    while pending:
        descriptor = pending.pop()
        data = read_blob(layout, descriptor["digest"])
        assert sha256(data) == descriptor["digest"] and len(data) == descriptor["size"], descriptor
        found[descriptor["digest"]] = data
        if descriptor["mediaType"] in (OCI_MANIFEST, OCI_INDEX) or descriptor["mediaType"].startswith(
            "application/vnd.docker.distribution.manifest"
        ):
            document = json.loads(data)
            pending += document.get("manifests", [])
            pending += [document["config"]] if "config" in document else []
            pending += document.get("layers", [])
    return found
