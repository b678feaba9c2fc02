"""The same Dockerfile built by the real Docker engine and by `registry build` gives the same filesystem,
file for file: types, modes, owners, contents and link targets (times aside).

Docker's side: `docker build` (FROM the base on our loopback registry, `--network none`), then `docker
create` + `docker export`. Ours: the image's layers from the local store applied in order. What only a
container has (/.dockerenv, /dev, /proc, /sys, the /etc files the engine mounts) is left out of both.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from registry.client.store import ImageStore
from registry.unpack import unpack_layers
from tests.build.conftest import Base, Docker, Registry, write_context

pytestmark = pytest.mark.clients

CONTAINER_ONLY = {
    ".dockerenv",
    "dev",
    "proc",
    "sys",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
}
Tree = dict[str, tuple]

DOCKERFILE = """\
FROM {base}
ENV DIR=/opt/app
WORKDIR $DIR
COPY files/ ./
COPY --chown=65534:65534 owned.txt /srv/owned/
COPY script.sh /usr/local/bin/
ADD bundle.tar.gz /opt/bundle/
RUN mkdir -p /var/lib/thing && echo made > /var/lib/thing/made && busybox chmod 0751 /var/lib/thing \\
 && busybox ln -s /opt/app/a.txt /link && rm /etc/group && touch /etc/newfile \\
 && busybox chown 65534:65534 /etc/newfile
RUN rm -r /www && mkdir /www && echo replaced > /www/index.html
WORKDIR /created/by/workdir
"""


def _bundle() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, mode, owner, content in (
            ("bin/", 0o755, 0, None),
            ("bin/tool", 0o4755, 0, b"#!/bin/sh\n"),
            ("shared/", 0o2775, 1000, None),
            ("shared/data", 0o664, 1000, b"data\n"),
        ):
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = mode, owner, owner
            info.type = tarfile.DIRTYPE if content is None else tarfile.REGTYPE
            info.size = len(content or b"")
            archive.addfile(info, io.BytesIO(content) if content else None)
    return gzip.compress(raw.getvalue())


def _kept(name: str) -> bool:
    parts = name.strip("/").split("/")
    return not any("/".join(parts[: count + 1]) in CONTAINER_ONLY for count in range(len(parts)))


def _tar_tree(archive: Path) -> Tree:
    tree: Tree = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            name = member.name.removeprefix("./").rstrip("/")
            if not name or not _kept(name):
                continue
            content = hashlib.sha256(tar.extractfile(member).read()).hexdigest() if member.isreg() else None  # type: ignore[union-attr]
            link = member.linkname if member.issym() else None
            kind = (
                "dir"
                if member.isdir()
                else "link"
                if member.issym()
                else "file"
                if member.isreg()
                else member.type
            )
            tree[name] = (kind, oct(member.mode & 0o7777), member.uid, member.gid, content, link)
    return tree


def _dir_tree(root: Path) -> Tree:
    tree: Tree = {}
    for directory, folders, files in os.walk(root):
        for entry in [*folders, *files]:
            path = Path(directory) / entry
            name = str(path.relative_to(root))
            if not _kept(name):
                continue
            info = os.lstat(path)
            mode = info.st_mode
            kind = "dir" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode) else "file"
            content = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(mode) else None
            link = os.readlink(path) if stat.S_ISLNK(mode) else None
            tree[name] = (kind, oct(stat.S_IMODE(mode)), info.st_uid, info.st_gid, content, link)
    return tree


def test_docker_build_and_ours_give_the_same_filesystem(
    base: Base, registry: Registry, docker: Docker, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path / "context",
        DOCKERFILE.format(base=base.reference),
        {
            "files/a.txt": "a\n",
            "files/sub/b.txt": "b\n",
            "owned.txt": "mine\n",
            "script.sh": "#!/bin/sh\necho hi\n",
        },
    )
    (context / "bundle.tar.gz").write_bytes(_bundle())
    (context / "files" / "sub" / "b.txt").chmod(0o600)
    (context / "script.sh").chmod(0o755)

    docker("build", "--network", "none", "-t", "parity:docker", str(context))
    container = docker("create", "parity:docker").stdout.strip()
    exported = tmp_path / "docker.tar"
    docker("export", "-o", str(exported), container)
    docker("rm", container)

    registry("build", "-t", "parity:ours", str(context))
    image = ImageStore(registry.store).image("parity:ours")
    ours = tmp_path / "ours"
    ours.mkdir()
    unpack_layers(image.layers, image.config["rootfs"]["diff_ids"], ours)

    theirs, mine = _tar_tree(exported), _dir_tree(ours)
    differences = {
        name: (theirs.get(name), mine.get(name))
        for name in sorted(set(theirs) | set(mine))
        if theirs.get(name) != mine.get(name)
    }
    assert not differences, "\n".join(
        f"{name}: docker {pair[0]}, ours {pair[1]}" for name, pair in differences.items()
    )
    assert (
        theirs["srv/owned/owned.txt"][2:4] == (65534, 65534) and "etc/group" not in theirs
    )  # the test tests
