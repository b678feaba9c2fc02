"""`save` and `load`: images as tarballs, in Docker's archive format or as an OCI image layout.

A docker-archive holds `manifest.json` (`[{Config, RepoTags, Layers}]`) and files those entries name; we
write the blobs under `blobs/sha256/` as Docker 25 does, layers as stored (compressed: `docker load` and
skopeo decompress them). An OCI archive is the layout itself, each image named as containerd names it
(`io.containerd.image.name` the full reference, `org.opencontainers.image.ref.name` its tag), so skopeo's
`oci-archive:FILE:TAG` and `docker load` read it too. `load` takes either, extracted with tarfile's `data`
filter (nothing outside the work folder, no devices) into staging, then moved blob by blob into the store.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, Final

from registry.client import reference as references
from registry.client.media import blob_descriptor, image_manifest, layer_type_for
from registry.client.platforms import Platform, choose
from registry.client.store import ImageStore, LocalImage, StoreError, sha256_file
from registry.types import INDEX_TYPES, OCI_INDEX, OCI_MANIFEST

DOCKER_ARCHIVE: Final = "docker-archive"
OCI_ARCHIVE: Final = "oci"
FORMATS: Final = (DOCKER_ARCHIVE, OCI_ARCHIVE)
CONTAINERD_NAME: Final = "io.containerd.image.name"
REF_NAME: Final = "org.opencontainers.image.ref.name"


def _blob_name(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


class _Writer:
    """A streaming tar writer that adds each blob once, however many images share it."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.written: set[str] = set()

    def blob(self, store: ImageStore, digest: str) -> str:
        name = _blob_name(digest)
        if digest not in self.written:
            path = store.blob_path(digest)
            info = self.tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as stream:
                self.tar.addfile(info, stream)
            self.written.add(digest)
        return name

    def image(self, store: ImageStore, image: LocalImage) -> list[str]:
        """Add the image's manifest, config and layers; returns the layers' names in the archive."""
        self.blob(store, image.manifest_digest)
        self.blob(store, image.config_digest)
        return [self.blob(store, layer.digest) for layer in image.layers]

    def document(self, name: str, document: Any) -> None:
        data = json.dumps(document, indent=2).encode() + b"\n"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.tar.close()


def save(store: ImageStore, names: Iterable[str], out: BinaryIO, format: str = DOCKER_ARCHIVE) -> None:
    """Write the images `names` name (references, IDs or digests) to `out` as one archive."""
    if format not in FORMATS:
        raise ValueError(f"unknown archive format {format!r} (choose from {', '.join(FORMATS)})")
    images = [store.image(name) for name in names]
    writer = _Writer(out)
    if format == DOCKER_ARCHIVE:
        entries: dict[str, dict[str, Any]] = {}
        for image in images:
            layers = writer.image(store, image)
            entry = entries.setdefault(
                image.config_digest,
                {"Config": _blob_name(image.config_digest), "RepoTags": [], "Layers": layers},
            )
            if image.reference and references.parse(image.reference).tag:
                entry["RepoTags"].append(references.familiar(image.reference))
        writer.document("manifest.json", list(entries.values()))
    else:
        descriptors = []
        for image in images:
            writer.image(store, image)
            manifest = store.read_blob(image.manifest_digest)
            media_type = json.loads(manifest).get("mediaType", OCI_MANIFEST)
            descriptor: dict[str, Any] = {
                "mediaType": media_type,
                "digest": image.manifest_digest,
                "size": len(manifest),
            }
            if image.reference:
                parsed = references.parse(image.reference)
                descriptor["annotations"] = {CONTAINERD_NAME: image.reference}
                if parsed.tag:
                    descriptor["annotations"][REF_NAME] = parsed.tag
            descriptors.append(descriptor)
        writer.document("oci-layout", {"imageLayoutVersion": "1.0.0"})
        writer.document("index.json", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
    writer.close()


def load(store: ImageStore, source: BinaryIO) -> list[str]:
    """Add every image of a docker-archive or OCI archive (compressed or not) to the store.

    Returns what was loaded, as `docker load` reports it: a reference per named image, else its ID.
    """
    with store.lease():
        work = Path(tempfile.mkdtemp(dir=store.staging, prefix="load-"))
        try:
            with tarfile.open(fileobj=source, mode="r|*") as tar:
                tar.extractall(work, filter="data")
            if (work / "manifest.json").is_file():
                return _load_docker(store, work)
            if (work / "index.json").is_file():
                return _load_oci(store, work)
            raise StoreError("not an image archive: it has neither manifest.json nor index.json")
        except tarfile.TarError as error:
            raise StoreError(f"cannot read the archive: {error}") from error
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _inside(work: Path, name: str) -> Path:
    """The file an archive's own index names, refused if it points outside the extracted archive."""
    path = (work / name).resolve()
    if not path.is_relative_to(work.resolve()) or not path.is_file():
        raise StoreError(f"the archive names {name!r}, which it does not contain")
    return path


def _move_in(store: ImageStore, path: Path, digest: str | None = None) -> tuple[str, int]:
    """Move an extracted file into the store (checking `digest` when the archive claims one)."""
    size = path.stat().st_size
    actual = sha256_file(path)
    if digest is not None and actual != digest:
        raise StoreError(f"blob {path.name} of the archive has digest {actual}, not {digest}")
    if not store.has_blob(actual):
        store.commit_blob(path, actual, verified=True)
    return actual, size


def _loaded(image: LocalImage, names: list[str]) -> list[str]:
    return [references.familiar(name) for name in names] or [image.config_digest]


def _load_docker(store: ImageStore, work: Path) -> list[str]:
    loaded = []
    moved: dict[Path, dict[str, Any]] = {}  # images of one archive share layer files
    for entry in json.loads((work / "manifest.json").read_bytes()):
        config = _inside(work, entry["Config"]).read_bytes()
        layers = []
        for name in entry["Layers"]:
            key = (work / name).resolve()
            if key not in moved:
                path = _inside(work, name)
                with open(path, "rb") as stream:
                    media_type = layer_type_for(stream.read(8))
                digest, size = _move_in(store, path)
                moved[key] = blob_descriptor(media_type, digest, size)
            layers.append(moved[key])
        manifest = image_manifest(config, layers)
        names = [references.normalize(tag) for tag in entry.get("RepoTags") or []]
        image = store.add_image(names[0] if names else None, json.dumps(manifest).encode(), config)
        for name in names[1:]:
            store.tag(image, name)
        loaded += _loaded(image, names)
    return loaded


def _load_oci(store: ImageStore, work: Path) -> list[str]:
    loaded = []
    for descriptor in json.loads((work / "index.json").read_bytes()).get("manifests", []):
        if descriptor.get("mediaType") in INDEX_TYPES:
            index = json.loads(_inside(work, _blob_name(descriptor["digest"])).read_bytes())
            descriptor = {**choose(index, Platform.host()), "annotations": descriptor.get("annotations", {})}
        manifest_path = _inside(work, _blob_name(descriptor["digest"]))
        manifest_bytes = manifest_path.read_bytes()
        manifest = json.loads(manifest_bytes)
        config = _inside(work, _blob_name(manifest["config"]["digest"])).read_bytes()
        for layer in manifest["layers"]:
            if not store.has_blob(layer["digest"]):
                _move_in(store, _inside(work, _blob_name(layer["digest"])), layer["digest"])
        name = _oci_name(descriptor.get("annotations", {}))
        image = store.add_image(name, manifest_bytes, config)
        loaded += _loaded(image, [name] if name else [])
    return loaded


def _oci_name(annotations: dict[str, str]) -> str | None:
    """containerd's full name; else `ref.name` when it is a full reference rather than a bare tag."""
    name = annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME)
    if not name or (name == annotations.get(REF_NAME) and "/" not in name):
        return None
    return references.normalize(name)
