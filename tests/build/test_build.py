"""`registry build` end to end: Dockerfiles built with the real command, run with `registry run`, pushed
to a real `registry serve` and pulled and run by the real Docker engine."""

from __future__ import annotations

import bz2
import functools
import http.server
import io
import json
import lzma
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.client.store import ImageStore
from tests.build.conftest import Base, Docker, Registry, write_context
from tests.support.tools import require_tool

HELLO = "<h1>Hello, Docker!</h1>\n"


def _built(output: str) -> str:
    found = re.search(r"^Successfully built ([0-9a-f]{12})$", output, re.M)
    assert found, output
    return found.group(1)


def _config(registry: Registry, reference: str) -> dict:
    return ImageStore(registry.store).image(reference).config


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server on loopback: (its URL, the folder it serves)."""
    folder = tmp_path / "web"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    thread.join()


@pytest.mark.clients
def test_docker_primer_example_builds_runs_and_pulls_into_docker(
    base: Base, registry: Registry, docker: Docker, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path / "hello", f"FROM {base.reference}\nRUN echo '<h1>Hello, Docker!</h1>' > /www/index.html\n"
    )
    image = f"{base.server.host}/primer/hello:1"
    built = registry("build", "-t", image, str(context))
    assert "Step 2/2 : RUN echo '<h1>Hello, Docker!</h1>' > /www/index.html" in built.stdout
    assert f"Successfully tagged {image}" in built.stdout
    assert registry("run", "--rm", image, "cat", "/www/index.html").stdout == HELLO
    registry("push", image)
    docker("pull", image)
    assert docker("run", "--rm", "--network", "none", image, "cat", "/www/index.html").stdout == HELLO


def test_the_server_never_loads_the_builder() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, registry.asgi, registry.app; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "registry.app" in loaded and "registry.build" not in loaded


def test_rebuild_is_all_cache_hits_and_the_same_image(base: Base, registry: Registry, tmp_path: Path) -> None:
    context = write_context(
        tmp_path / "app",
        f"FROM {base.reference}\nENV MODE=prod\nCOPY app.txt /app/\n"
        'RUN echo $((6*7))-ran; cp /app/app.txt /copy\nCMD ["cat", "/copy"]\n',
        {"app.txt": "version 1\n"},
    )
    first = registry("build", "-t", "app:1", str(context)).stdout
    assert "42-ran" in first and "Using cache" not in first
    second = registry("build", "-t", "app:1", str(context)).stdout
    assert "42-ran" not in second
    assert second.count(" ---> Using cache") == 4  # ENV, COPY, RUN, CMD
    assert _built(second) == _built(first)
    (context / "app.txt").write_text("version 2\n")
    third = registry("build", "-t", "app:1", str(context)).stdout
    assert third.count(" ---> Using cache") == 1  # only ENV: COPY's file changed, and what follows reruns
    assert "42-ran" in third
    assert registry("run", "--rm", "app:1").stdout == "version 2\n"
    uncached = registry("build", "--no-cache", "-t", "app:1", str(context)).stdout
    assert "Using cache" not in uncached and "42-ran" in uncached

    rows = {line[:11].strip(): line[11:].split() for line in registry("system", "df").stdout.splitlines()}
    entries, active, size, *_ = rows["Build Cache"]
    # ENV, then COPY, RUN and CMD for each version of app.txt; every layer is in an image still (those
    # of version 1 in the untagged image the second build left)
    assert (int(entries), int(active)) == (7, 4) and size != "0B"


def test_multi_stage_build_and_target(base: Base, registry: Registry, tmp_path: Path) -> None:
    context = write_context(
        tmp_path / "multi",
        f"ARG BASE={base.reference}\n"
        'FROM ${BASE} AS builder\nARG WHO=world\nRUN mkdir /out && echo "hello $WHO" > /out/greeting\n'
        "FROM ${BASE} AS unused\nRUN echo never-built\n"
        "FROM scratch\nCOPY --from=builder /out/greeting /greeting\nCOPY --from=0 /bin/busybox /bin/busybox\n"
        f"COPY --from={base.reference} /etc/passwd /etc/\n"
        'ENTRYPOINT ["/bin/busybox"]\nCMD ["cat", "/greeting"]\n',
    )
    built = registry("build", "--build-arg", "WHO=builder", "-t", "multi", str(context)).stdout
    assert "never-built" not in built and "unused" not in built
    assert registry("run", "--rm", "multi").stdout == "hello builder\n"
    config = _config(registry, "multi")
    assert len(config["rootfs"]["diff_ids"]) == 3  # scratch + three COPYs: nothing of the builder's layers
    assert (
        registry("run", "--rm", "multi", "head", "-1", "/etc/passwd").stdout
        == "root:x:0:0:root:/root:/bin/sh\n"
    )
    registry("build", "--target", "builder", "-t", "first-stage", str(context))  # WHO's default, this time
    assert registry("run", "--rm", "first-stage", "cat", "/out/greeting").stdout == "hello world\n"
    missing = registry("build", "--target", "nope", str(context), check=False)
    assert missing.returncode == 1 and "target stage 'nope' could not be found" in missing.stderr


def test_dockerignore_hides_files(base: Base, registry: Registry, tmp_path: Path) -> None:
    context = write_context(
        tmp_path / "ignore",
        f"FROM {base.reference}\nCOPY . /ctx/\n",
        {
            ".dockerignore": "*.log\n!keep.log\nsecrets\n**/*.tmp\n",
            "a.log": "x",
            "keep.log": "kept",
            "secrets/key": "s3cr3t",
            "src/main.py": "print()",
            "src/deep/x.tmp": "tmp",
        },
    )
    registry("build", "-t", "ignore", str(context))
    listing = registry(
        "run", "--rm", "ignore", "sh", "-c", "cd /ctx && busybox find . -type f | busybox sort"
    ).stdout.split()
    assert listing == ["./.dockerignore", "./Dockerfile", "./keep.log", "./src/main.py"]
    (context / "Dockerfile").write_text(f"FROM {base.reference}\nCOPY secrets/key /\n")
    refused = registry("build", str(context), check=False)
    assert refused.returncode == 1
    assert (
        "Dockerfile:2: COPY: file not found in build context or excluded by .dockerignore" in refused.stderr
    )


def _tar(files: dict[str, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o640
            archive.addfile(info, io.BytesIO(content.encode()))
    return raw.getvalue()


def test_add_unpacks_archives_and_fetches_urls(
    base: Base, registry: Registry, tmp_path: Path, web: tuple[str, Path]
) -> None:
    import gzip

    url, served = web
    (served / "remote.txt").write_text("from the web\n")
    context = write_context(
        tmp_path / "add",
        f"FROM {base.reference}\nADD site.tar.gz /srv/gz/\nADD site.tar.bz2 /srv/bz2\n"
        f"ADD site.tar.xz /srv/xz/\nADD {url}/remote.txt /srv/\nADD plain.txt /srv/plain.txt\n"
        "COPY site.tar.gz /srv/copied/\n",
        {
            "site.tar.gz": gzip.compress(_tar({"index.html": "gz\n"})),
            "site.tar.bz2": bz2.compress(_tar({"index.html": "bz2\n"})),
            "site.tar.xz": lzma.compress(_tar({"index.html": "xz\n"})),
            "plain.txt": "plain\n",
        },
    )
    registry("build", "-t", "add", str(context))
    script = (
        "cat /srv/gz/index.html /srv/bz2/index.html /srv/xz/index.html /srv/remote.txt /srv/plain.txt; "
        "busybox stat -c '%a %n' /srv/remote.txt /srv/gz/index.html; ls /srv/copied"
    )
    out = registry("run", "--rm", "add", "sh", "-c", script).stdout
    assert (
        out == "gz\nbz2\nxz\nfrom the web\nplain\n600 /srv/remote.txt\n640 /srv/gz/index.html\nsite.tar.gz\n"
    )


def test_contexts_from_stdin_url_and_git(
    base: Base, registry: Registry, tmp_path: Path, web: tuple[str, Path]
) -> None:
    url, served = web
    dockerfile = f"FROM {base.reference}\nCOPY message /message\n"
    context = write_context(tmp_path / "ctx", dockerfile, {"message": "from a tar\n"})
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(context, arcname=".")
    registry("build", "-t", "from-stdin", "-", input=archive.getvalue(), text=False)
    assert registry("run", "--rm", "from-stdin", "cat", "/message").stdout == "from a tar\n"

    alone = f"FROM {base.reference}\nRUN echo no context > /note\n".encode()  # a Dockerfile, no tar
    registry("build", "-t", "no-context", "-", input=alone, text=False)
    assert registry("run", "--rm", "no-context", "cat", "/note").stdout == "no context\n"

    (served / "context.tar.gz").write_bytes(archive.getvalue())
    registry("build", "-t", "from-url", f"{url}/context.tar.gz")
    assert registry("run", "--rm", "from-url", "cat", "/message").stdout == "from a tar\n"

    git = require_tool("git")["git"]
    repository = tmp_path / "repo"
    write_context(repository / "sub", dockerfile, {"message": "from git\n"})
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        [*identity, "commit", "-qm", "one"],
        ["tag", "v1"],
    ):
        subprocess.run([git, "-C", str(repository), *command], check=True, capture_output=True)
    (repository / "sub" / "message").write_text("changed after v1\n")
    subprocess.run([git, "-C", str(repository), *identity, "commit", "-qam", "two"], check=True)
    registry("build", "-t", "from-git", f"file://{repository}#v1:sub")
    assert registry("run", "--rm", "from-git", "cat", "/message").stdout == "from git\n"
    registry("build", "-t", "from-git-main", f"file://{repository}#main:sub")
    assert registry("run", "--rm", "from-git-main", "cat", "/message").stdout == "changed after v1\n"


def test_config_instructions(base: Base, registry: Registry, tmp_path: Path) -> None:
    context = write_context(
        tmp_path / "config",
        f'FROM {base.reference}\nARG VERSION=1.0\nENV APP=/opt/app NAME="my app"\n'
        'LABEL version=$VERSION "a b"=c\n'
        'WORKDIR $APP\nWORKDIR sub\nUSER nobody\nEXPOSE 80 53/udp 8000-8001\nVOLUME ["/data"]\n'
        'STOPSIGNAL SIGINT\nHEALTHCHECK --interval=30s --retries=3 CMD ["true"]\n'
        'SHELL ["/bin/sh", "-e", "-c"]\nENTRYPOINT ["echo"]\nONBUILD RUN echo triggered > /tmp/trigger\n',
    )
    registry("build", "-t", "configured", str(context))
    config = _config(registry, "configured")["config"]
    assert config["Env"][-2:] == ["APP=/opt/app", "NAME=my app"]
    assert config["Labels"] == {"version": "1.0", "a b": "c"}
    assert (config["WorkingDir"], config["User"], config["StopSignal"]) == (
        "/opt/app/sub",
        "nobody",
        "SIGINT",
    )
    assert set(config["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}
    assert config["Volumes"] == {"/data": {}}
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30 * 10**9, "Retries": 3}
    assert config["Shell"] == ["/bin/sh", "-e", "-c"]
    assert config["Entrypoint"] == ["echo"] and config.get("Cmd") is None  # the base's CMD is dropped
    assert config["OnBuild"] == ["RUN echo triggered > /tmp/trigger"]
    assert registry("run", "--rm", "configured", "arguments").stdout == "arguments\n"
    assert registry("run", "--rm", "--entrypoint", "pwd", "configured").stdout == "/opt/app/sub\n"

    child = write_context(tmp_path / "child", 'FROM configured\nCMD ["from", "child"]\n')
    built = registry("build", "-t", "child", str(child)).stdout
    assert "# Executing 1 build trigger" in built
    assert registry("run", "--rm", "--entrypoint", "cat", "child", "/tmp/trigger").stdout == "triggered\n"
    assert registry("run", "--rm", "child").stdout == "from child\n"
    assert "OnBuild" not in _config(registry, "child")["config"]


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        (
            "FROM {base}\nCOPY ../outside /x\n",
            "Dockerfile:2: COPY: forbidden path outside the build context: ../outside",
        ),
        (
            "FROM {base}\nRUN exit 3\n",
            "Dockerfile:2: RUN: The command ['/bin/sh', '-c', 'exit 3'] returned a non-zero code: 3",
        ),
        ("FROM {base}\n\nFOO bar\n", "Dockerfile:3: unknown instruction: FOO"),
        ("FROM {base}\nCOPY missing.txt /\n", "Dockerfile:2: COPY: file not found in build context"),
        ("FROM {base}\nCOPY *.none /\n", "Dockerfile:2: COPY: no source files were specified"),
    ],
)
def test_errors_are_one_line_and_tag_nothing(
    base: Base, registry: Registry, tmp_path: Path, dockerfile: str, message: str
) -> None:
    context = write_context(tmp_path / "bad", dockerfile.format(base=base.reference))
    failed = registry("build", "-t", "bad", str(context), check=False)
    assert failed.returncode == 1
    assert f"registry: build: {message}" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert "bad" not in registry("images").stdout


def test_source_date_epoch_builds_are_reproducible(base: Base, registry: Registry, tmp_path: Path) -> None:
    context = write_context(
        tmp_path / "repro",
        f"FROM {base.reference}\nCOPY data /data/\nRUN echo generated > /data/generated && mkdir -p /var/x\n"
        "WORKDIR /new/dir\n",
        {"data/a": "a\n", "data/b/c": "c\n"},
    )
    digests = []
    for attempt in ("one", "two"):
        store = tmp_path / f"store-{attempt}"
        env = {**registry.env, "REGISTRY_CLIENT_ROOT": str(store), "SOURCE_DATE_EPOCH": "1700000000"}
        own = Registry(env, store)
        own("build", "-t", "repro", str(context))
        image = ImageStore(store).image("repro")
        digests.append(image.manifest_digest)
        assert image.config["created"] == "2023-11-14T22:13:20Z"
        (context / "data" / "a").touch()  # a newer time on disk: clamped, so no difference
    assert digests[0] == digests[1]
    layers = json.loads(ImageStore(tmp_path / "store-one").read_blob(digests[0]))["layers"]
    assert len(layers) == 5  # busybox, /www, COPY, RUN, WORKDIR


def test_rootless_build_gives_the_same_image_as_root(base: Base, registry: Registry, tmp_path: Path) -> None:
    """Without privileges (uid 1000 in a user namespace of `unshare`), RUN's container runs in a user
    namespace of its own and COPY cannot chown: the layers still say root (and --chown's owner), so
    the image is the very one root builds."""
    unshare = require_tool("unshare")["unshare"]
    context = write_context(
        tmp_path / "rootless",
        f"FROM {base.reference}\nRUN mkdir /made && echo hi > /made/file && rm /www/.keep\n"
        "COPY --chown=65534:65534 owned /srv/owned/\nCOPY plain /srv/\nWORKDIR /work\n",
        {"owned": "owned\n", "plain": "plain\n"},
    )
    digests = {}
    for mode in ("root", "rootless"):
        store = tmp_path / f"store-{mode}"
        env = {
            **registry.env,
            "REGISTRY_CLIENT_ROOT": str(store),
            "REGISTRY_CONTAINERS_ROOT": str(tmp_path / f"containers-{mode}"),
            "SOURCE_DATE_EPOCH": "1700000000",
        }
        prefix = [unshare, "--user", "--map-user=1000", "--map-group=1000"] if mode == "rootless" else []
        command = [*prefix, sys.executable, "-m", "registry", "build", "-t", "same", str(context)]
        built = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert built.returncode == 0, built.stderr
        digests[mode] = ImageStore(store).image("same").manifest_digest
    assert digests["rootless"] == digests["root"]
    image = ImageStore(tmp_path / "store-rootless").image("same")
    with tarfile.open(image.layers[-2].path) as layer:  # COPY plain /srv/, into the --chown'd /srv
        assert {(m.name, m.uid, m.gid) for m in layer} == {("srv", 65534, 65534), ("srv/plain", 0, 0)}
