"""Reading Distribution's filesystem layout, `docker/registry/v2/`, without changing it:

    blobs/sha256/<first two hex>/<hex>/data                         every blob's bytes (manifests too)
    repositories/<name>/_layers/sha256/<hex>/link                   a blob the repository holds
    repositories/<name>/_manifests/revisions/sha256/<hex>/link      a manifest the repository holds
    repositories/<name>/_manifests/tags/<tag>/current/link          what a tag points at

A link file holds the digest (`sha256:<hex>`). A repository's name is its path below `repositories`
(`team/app`), found by the `_manifests` or `_layers` folder inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from registry.errors import RegistryError
from registry.types import Digest

V2 = Path("docker") / "registry" / "v2"


@dataclass(frozen=True, slots=True)
class Repository:
    name: str
    layers: tuple[Digest, ...]
    revisions: tuple[Digest, ...]
    tags: dict[str, Digest]


def v2_root(path: Path) -> Path | None:
    """Distribution's `docker/registry/v2` under `path` (its rootdirectory), or `path` itself when it is
    that folder already; None when neither holds repositories."""
    for candidate in (path / V2, path):
        if (candidate / "repositories").is_dir():
            return candidate
    return None


def holds_repositories(path: Path) -> bool:
    """Whether `path` is (or holds) a Distribution layout with at least one repository in it."""
    root = v2_root(path)
    return root is not None and any((root / "repositories").iterdir())


def _link(path: Path) -> Digest | None:
    try:
        return Digest.parse(path.read_text().strip())
    except (OSError, RegistryError):
        return None


def _linked(folder: Path) -> tuple[Digest, ...]:
    """The digests of `<folder>/sha256/<hex>/link` files, each checked against its folder's name."""
    found = []
    for link in sorted(folder.glob("*/*/link")):
        digest = _link(link)
        if digest is not None and digest.hex == link.parent.name:
            found.append(digest)
    return tuple(found)


def repositories(root: Path) -> Iterator[Repository]:
    """Every repository under the v2 `root`, in name order."""
    base = root / "repositories"
    for folder in sorted(base.rglob("*")):
        if folder.name not in ("_manifests", "_layers") or not folder.is_dir():
            continue
        if folder.name == "_layers" and (folder.parent / "_manifests").is_dir():
            continue  # found once, by its _manifests
        repo = folder.parent
        tags = {}
        for current in sorted((repo / "_manifests" / "tags").glob("*/current/link")):
            digest = _link(current)
            if digest is not None:
                tags[current.parent.parent.name] = digest
        yield Repository(
            name=repo.relative_to(base).as_posix(),
            layers=_linked(repo / "_layers"),
            revisions=_linked(repo / "_manifests" / "revisions"),
            tags=tags,
        )


def blob_path(root: Path, digest: Digest) -> Path:
    return root / "blobs" / digest.algorithm / digest.hex[:2] / digest.hex / "data"
