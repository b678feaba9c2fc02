"""The local image store: an OCI image layout on disk, shared by every client command.

    <root>/                      REGISTRY_CLIENT_ROOT, else $XDG_DATA_HOME/registry/client
      oci-layout                 {"imageLayoutVersion": "1.0.0"}
      index.json                 one descriptor per reference, its annotation
                                 org.opencontainers.image.ref.name holding the full normalized reference;
                                 one without annotations per dangling image (its last tag moved elsewhere)
      blobs/sha256/<hex>         manifests, configs and layers: verified content, never partial
      staging/                   downloads and imports in progress; `<hex>.partial` is resumed later
      sources.json               digest -> repositories it is known to be in (cross-repo mount sources)
      sizes.json                 layer digest -> bytes of its files unpacked (registry.client.unpacked)
      lock                       flock held while index.json or sources.json is rewritten
      gc.lock                    held shared while blobs are added, exclusive while garbage is collected

Being a plain OCI layout, the root can be read by other tools (`skopeo copy oci:ROOT:REF ...`). A blob
appears in `blobs/` only by rename after its digest was checked, and index.json is replaced atomically, so
concurrent commands and crashes never expose partial content.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from registry.client import reference as references
from registry.types import IMAGE_TYPES, OCI_INDEX, OCI_MANIFEST, Digest

REF_NAME: Final = "org.opencontainers.image.ref.name"
LAYOUT_VERSION: Final = "1.0.0"
_HEX_PREFIX_RE: Final = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})")
_READ_SIZE: Final = 1 << 20


class ImageNotFound(KeyError):
    """No local image answers to a name, ID or digest."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


class StoreError(ValueError):
    """Content refused by the store: a digest that does not match, a manifest missing a layer, ..."""


@dataclass(frozen=True)
class LayerRef:
    digest: str  # "sha256:..."
    media_type: str  # e.g. application/vnd.oci.image.layer.v1.tar+gzip, ...tar+zstd, ...tar, docker's
    path: Path  # the blob file in the local store
    diff_id: str | None  # from config.rootfs.diff_ids, same index


@dataclass(frozen=True)
class LocalImage:
    reference: str | None  # full reference it was found under, if any
    manifest_digest: str
    config_digest: str  # the image ID (docker shows its first 12 hex)
    config: dict[str, Any]  # the parsed image config JSON
    layers: list[LayerRef]

    @property
    def id(self) -> str:
        """The short image ID Docker prints."""
        return self.config_digest.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class Entry:
    """One descriptor of index.json: a manifest, under one reference or (dangling) none."""

    digest: str
    media_type: str
    size: int
    reference: str | None

    @classmethod
    def from_descriptor(cls, descriptor: dict[str, Any]) -> Entry:
        name = descriptor.get("annotations", {}).get(REF_NAME)
        return cls(descriptor["digest"], descriptor["mediaType"], descriptor["size"], name)

    def descriptor(self) -> dict[str, Any]:
        document: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.reference:
            document["annotations"] = {REF_NAME: self.reference}
        return document


@dataclass(frozen=True)
class ImageListing:
    """A local image with every reference it has (none when dangling)."""

    image: LocalImage
    references: list[str]
    size: int  # bytes of its config and layers in the store


def default_root() -> Path:
    if root := os.environ.get("REGISTRY_CLIENT_ROOT"):
        return Path(root)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "registry" / "client"


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_READ_SIZE):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _checked_digest(digest: str) -> Digest:
    """Parse a digest before it becomes part of a path: a hostile manifest must not name `../x`."""
    try:
        return Digest.parse(digest)
    except Exception as error:
        raise StoreError(f"invalid digest {digest!r}") from error


class ImageStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.blobs = self.root / "blobs"
        self.staging = self.root / "staging"
        self._index = self.root / "index.json"
        self._sources = self.root / "sources.json"
        self._sizes = self.root / "sizes.json"

    # ------------------------------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> Path:
        parsed = _checked_digest(digest)
        return self.blobs / parsed.algorithm / parsed.hex

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageNotFound(f"blob {digest} is not in the local store") from None

    def staging_path(self, digest: str) -> Path:
        """Where a download of `digest` is written; a file left there by an interrupted pull is resumed."""
        self._ensure_layout()
        return self.staging / f"{_checked_digest(digest).hex}.partial"

    def temporary_file(self) -> Path:
        """A new empty file in staging (the blobs' filesystem) for content whose digest is not known yet."""
        self._ensure_layout()
        handle, name = tempfile.mkstemp(dir=self.staging, suffix=".tmp")
        os.close(handle)
        return Path(name)

    def commit_blob(self, path: Path, digest: str, verified: bool = False) -> Path:
        """Move the file at `path` into the store as `digest`, checking its content unless `verified`."""
        target = self.blob_path(digest)
        if not verified and (actual := sha256_file(path)) != digest:
            raise StoreError(f"content of {path} has digest {actual}, not {digest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            path.unlink()
            return target
        try:
            os.replace(path, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            # Another filesystem: copy into staging first, so the blob still appears whole, by rename.
            staged = self.temporary_file()
            shutil.copyfile(path, staged)
            os.replace(staged, target)
            path.unlink()
        return target

    def write_blob(self, data: bytes, digest: str | None = None) -> str:
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is not None and digest != actual:
            raise StoreError(f"content has digest {actual}, not {digest}")
        if not self.has_blob(actual):
            staged = self.temporary_file()
            staged.write_bytes(data)
            self.commit_blob(staged, actual, verified=True)
        return actual

    # ------------------------------------------------------------------------------------------ images

    def add_image(
        self,
        reference: str | None,
        manifest_bytes: bytes,
        config_bytes: bytes,
        layer_files: Mapping[str, Path] | None = None,
    ) -> LocalImage:
        """Store an image manifest with its config and layers, and point `reference` (if any) at it.

        `layer_files` maps layer digests to files that are moved into the store after their digest is
        checked; layers not given must already be there. A reference that pointed at another image moves,
        and that image stays as a dangling one if nothing else names it (as with `docker pull`).
        """
        manifest = json.loads(manifest_bytes)
        media_type = manifest.get("mediaType", OCI_MANIFEST)
        if media_type not in IMAGE_TYPES:
            raise StoreError(f"not an image manifest: {media_type}")
        config_digest = manifest["config"]["digest"]
        with self.lease():
            self.write_blob(config_bytes, config_digest)
            for digest, path in (layer_files or {}).items():
                self.commit_blob(path, digest)
            for layer in manifest["layers"]:
                if not self.has_blob(layer["digest"]):
                    raise StoreError(f"layer {layer['digest']} is neither given nor in the local store")
            manifest_digest = self.write_blob(manifest_bytes)
            entry = Entry(manifest_digest, media_type, len(manifest_bytes), None)
            name = references.normalize(reference) if reference else None
            with self._locked():
                entries = self.entries()
                if name:
                    entries = _point(entries, name, entry)
                elif not any(e.digest == manifest_digest for e in entries):
                    entries.append(entry)
                self._write_index(entries)
        return self._load(manifest_digest, name)

    def image(self, ref: str) -> LocalImage:
        """The image `ref` names: a reference (short names as Docker reads them), an ID prefix or a digest."""
        entries = self.entries()
        full_id = re.fullmatch(r"(?:sha256:)?([a-f0-9]{64})", ref)
        if not full_id:
            with contextlib.suppress(ValueError):
                parsed = references.parse(ref)
                name = str(parsed)
                for entry in entries:
                    if entry.reference == name:
                        return self._load(entry.digest, name)
                if parsed.digest:
                    for entry in entries:
                        if entry.digest == parsed.digest:
                            return self._load(entry.digest, name)
        prefix = _HEX_PREFIX_RE.fullmatch(ref)
        if prefix:
            return self._by_id(prefix.group(1), ref, entries)
        raise ImageNotFound(f"No such image: {ref}")

    def entries(self) -> list[Entry]:
        try:
            document = json.loads(self._index.read_bytes())
        except FileNotFoundError:
            return []
        return [Entry.from_descriptor(descriptor) for descriptor in document.get("manifests", [])]

    def list_images(self) -> list[ImageListing]:
        """Every local image once, with its references, in index.json order."""
        named: dict[str, list[str]] = {}
        for entry in self.entries():
            named.setdefault(entry.digest, [])
            if entry.reference:
                named[entry.digest].append(entry.reference)
        listings = []
        for digest, names in named.items():
            image = self._load(digest, None)
            size = self.blob_path(image.config_digest).stat().st_size
            size += sum(layer.path.stat().st_size for layer in image.layers)
            listings.append(ImageListing(image, names, size))
        return listings

    def tag(self, image: LocalImage, reference: str) -> str:
        """Point `reference` at `image`; returns the normalized reference."""
        name = references.normalize(reference)
        manifest = self.read_blob(image.manifest_digest)
        media_type = json.loads(manifest).get("mediaType", OCI_MANIFEST)
        with self._locked():
            entry = Entry(image.manifest_digest, media_type, len(manifest), name)
            self._write_index(_point(self.entries(), name, entry))
        return name

    def untag(self, reference: str) -> bool:
        """Remove one reference; returns True when that was the image's last one and the image is gone."""
        name = references.normalize(reference)
        with self._locked():
            entries = self.entries()
            target = next((e for e in entries if e.reference == name), None)
            if target is None:
                raise ImageNotFound(f"No such image: {reference}")
            entries = [e for e in entries if e is not target]
            self._write_index(entries)
        return not any(e.digest == target.digest for e in entries)

    def remove(self, manifest_digest: str) -> list[str]:
        """Remove an image with all its references; returns the references it had."""
        with self._locked():
            entries = self.entries()
            removed = [e.reference for e in entries if e.digest == manifest_digest and e.reference]
            self._write_index([e for e in entries if e.digest != manifest_digest])
        return removed

    def dangling(self) -> list[str]:
        """Manifest digests of the images no reference names."""
        entries = self.entries()
        named = {e.digest for e in entries if e.reference}
        return list(dict.fromkeys(e.digest for e in entries if e.digest not in named))

    # ------------------------------------------------------------------------------------------ garbage

    @contextlib.contextmanager
    def lease(self) -> Iterator[None]:
        """Keep garbage collection away while blobs are added but not yet referenced by index.json."""
        self._ensure_layout()
        with open(self.root / "gc.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            yield

    def collect_garbage(self, include_staging: bool = False) -> int:
        """Delete blobs no image reaches; returns the bytes freed (0 when a pull or import is running).

        Collection is skipped rather than waited for while another command holds a lease: the next `rmi`
        or `prune` catches up, and no command ever blocks behind a long download. `include_staging` also
        drops what interrupted pulls left for resuming.
        """
        if not self.root.is_dir():
            return 0
        with open(self.root / "gc.lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            reachable = self.reachable_blobs()
            freed = 0
            for algorithm in self.blobs.iterdir() if self.blobs.is_dir() else ():
                for blob in algorithm.iterdir():
                    if f"{algorithm.name}:{blob.name}" not in reachable:
                        freed += blob.stat().st_size
                        blob.unlink()
            for leftover in self.staging.iterdir() if include_staging and self.staging.is_dir() else ():
                if leftover.is_file():
                    freed += leftover.stat().st_size
                    leftover.unlink()
            return freed

    def reachable_blobs(self) -> set[str]:
        """Digests of every manifest, config and layer some index.json entry leads to."""
        found: set[str] = set()
        for digest in {e.digest for e in self.entries()}:
            found.add(digest)
            manifest = json.loads(self.read_blob(digest))
            found.add(manifest["config"]["digest"])
            found.update(layer["digest"] for layer in manifest["layers"])
        return found

    # ------------------------------------------------------------------------------------------ sources

    def sources(self, digest: str) -> list[str]:
        """Repositories (`host/path`) `digest` is known to be in: where a push can mount it from."""
        try:
            return list(json.loads(self._sources.read_bytes()).get(digest, []))
        except FileNotFoundError:
            return []

    def add_sources(self, repository: str, digests: list[str]) -> None:
        self._ensure_layout()
        with self._locked():
            try:
                known = json.loads(self._sources.read_bytes())
            except FileNotFoundError:
                known = {}
            for digest in digests:
                repositories = known.setdefault(digest, [])
                if repository not in repositories:
                    repositories.append(repository)
            _atomic_write(self._sources, json.dumps(known, indent=1, sort_keys=True).encode())

    # ------------------------------------------------------------------------------------------ sizes

    def unpacked_sizes(self) -> dict[str, int]:
        """Layer digest -> unpacked bytes, for the layers counted so far."""
        try:
            return dict(json.loads(self._sizes.read_bytes()))
        except FileNotFoundError:
            return {}

    def add_unpacked_sizes(self, sizes: Mapping[str, int]) -> None:
        with self._locked():
            merged = {**self.unpacked_sizes(), **sizes}
            _atomic_write(self._sizes, json.dumps(merged, sort_keys=True).encode())

    # ------------------------------------------------------------------------------------------ internals

    def _load(self, manifest_digest: str, reference: str | None) -> LocalImage:
        manifest = json.loads(self.read_blob(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config = json.loads(self.read_blob(config_digest))
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        layers = [
            LayerRef(
                layer["digest"],
                layer["mediaType"],
                self.blob_path(layer["digest"]),
                diff_ids[i] if i < len(diff_ids) else None,
            )
            for i, layer in enumerate(manifest["layers"])
        ]
        return LocalImage(reference, manifest_digest, config_digest, config, layers)

    def _by_id(self, prefix: str, ref: str, entries: list[Entry]) -> LocalImage:
        matches: dict[str, str] = {}  # config digest -> a manifest digest of that image
        for digest in dict.fromkeys(e.digest for e in entries):
            config_digest = json.loads(self.read_blob(digest))["config"]["digest"]
            if digest.removeprefix("sha256:") == prefix or config_digest.removeprefix("sha256:").startswith(
                prefix
            ):
                matches.setdefault(config_digest, digest)
        if not matches:
            raise ImageNotFound(f"No such image: {ref}")
        if len(matches) > 1:
            raise ImageNotFound(f"image ID prefix {ref!r} is ambiguous: it matches {len(matches)} images")
        return self._load(next(iter(matches.values())), None)

    def _ensure_layout(self) -> None:
        if (self.root / "oci-layout").is_file():
            return
        for folder in (self.blobs / "sha256", self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / "oci-layout", json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
        if not self._index.exists():
            self._write_index([])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_layout()
        with open(self.root / "lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write_index(self, entries: list[Entry]) -> None:
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [entry.descriptor() for entry in entries],
        }
        _atomic_write(self._index, json.dumps(document, indent=2).encode() + b"\n")


def _point(entries: list[Entry], name: str, entry: Entry) -> list[Entry]:
    """Entries with `name` moved to `entry`; the image it left stays, unnamed, if nothing else names it."""
    previous = next((e for e in entries if e.reference == name), None)
    unnamed_twin = Entry(entry.digest, entry.media_type, entry.size, None)
    kept = [e for e in entries if e.reference != name and e != unnamed_twin]
    kept.append(Entry(entry.digest, entry.media_type, entry.size, name))
    if previous and previous.digest != entry.digest and not any(e.digest == previous.digest for e in kept):
        kept.append(Entry(previous.digest, previous.media_type, previous.size, None))
    return kept


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


__all__ = [
    "Entry",
    "ImageListing",
    "ImageNotFound",
    "ImageStore",
    "LayerRef",
    "LocalImage",
    "StoreError",
    "default_root",
]
