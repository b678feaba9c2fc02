"""The build context: a folder, a tar archive on standard input, a tarball URL or a git repository.

Whatever the source, the build sees a folder (remote and streamed contexts are unpacked into a
temporary one, removed when the build ends) and the Dockerfile's text. As with Docker, a stream or URL
that is no archive is taken as the Dockerfile itself, with an empty context, and a git URL's fragment
`#REF:SUBDIR` picks the branch, tag or commit and the folder inside the repository.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from registry.build.archives import extract, is_tar
from registry.build.errors import BuildError
from registry.build.fetch import download

_GIT_URL: Final = re.compile(r"^(?:git://|git@|ssh://|file://|github\.com/)|^https?://[^#]*\.git(?:#.*)?$")


@dataclass(frozen=True)
class BuildContext:
    root: Path
    dockerfile: str  # its text
    dockerfile_name: str  # as errors name it


def is_git_url(source: str) -> bool:
    return bool(_GIT_URL.match(source))


def _inside(root: Path, relative: str, what: str) -> Path:
    path = (root / relative).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise BuildError(f"{what} {relative!r} is outside the build context")
    return path


def _unpack(spooled: Path, into: Path) -> bool:
    """Unpack the context archive into `into`; False when it is no tar at all (then it is a Dockerfile)."""
    if not is_tar(spooled):
        return False
    with open(spooled, "rb") as stream:
        extract(stream, into, "the build context")
    return True


def _git_clone(url: str, into: Path) -> Path:
    """Clone `url` (its `#REF:SUBDIR` fragment as Docker reads it); the folder the context is."""
    remote, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    git = shutil.which("git")
    if git is None:
        raise BuildError("git is needed to build from a git repository URL: install git")
    quiet = {"capture_output": True, "text": True}
    shallow = [git, "clone", "--quiet", "--depth", "1", "--recurse-submodules", "--shallow-submodules"]
    result = subprocess.run([*shallow, *(["--branch", ref] if ref else []), remote, str(into)], **quiet)  # type: ignore[call-overload]
    if result.returncode != 0 and ref:  # a commit, not a branch or tag: fetch everything and check it out
        shutil.rmtree(into, ignore_errors=True)
        result = subprocess.run([git, "clone", "--quiet", "--recurse-submodules", remote, str(into)], **quiet)  # type: ignore[call-overload]
        if result.returncode == 0:
            result = subprocess.run([git, "-C", str(into), "checkout", "--quiet", ref], **quiet)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise BuildError(f"could not clone {url}: {result.stderr.strip().splitlines()[-1:] or 'git failed'}")
    shutil.rmtree(into / ".git", ignore_errors=True)
    return _inside(into, subdir or ".", "the git subdirectory")


def _dockerfile(root: Path, option: str | None, stdin: BinaryIO | None, local: bool) -> tuple[str, str]:
    if option == "-":
        if stdin is None:
            raise BuildError("the Dockerfile cannot come from standard input when the context does")
        return stdin.read().decode(), "Dockerfile"
    name = option or "Dockerfile"
    path = Path(name) if local and option else _inside(root, name, "the Dockerfile")
    try:
        return path.read_text(), name
    except FileNotFoundError:
        raise BuildError(f"cannot find the Dockerfile {name!r} (-f names another)") from None


@contextlib.contextmanager
def open_context(source: str, dockerfile: str | None, stdin: BinaryIO) -> Iterator[BuildContext]:
    """The context `source` names, unpacked if need be, for the duration of the build."""
    if source != "-" and not source.startswith(("http://", "https://")) and not is_git_url(source):
        root = Path(source)
        if not root.is_dir():
            raise BuildError(f"the build context {source!r} is not a folder (nor -, a URL or a git URL)")
        text, name = _dockerfile(root, dockerfile, stdin, local=True)
        yield BuildContext(root, text, name)
        return
    with tempfile.TemporaryDirectory(prefix="registry-build-context-") as temporary:
        root = Path(temporary) / "context"
        if is_git_url(source):
            root = _git_clone(source, root)
            text, name = _dockerfile(root, dockerfile, stdin, local=False)
        else:
            root.mkdir()
            spooled = Path(temporary) / "context.tar"
            with contextlib.ExitStack() as stack:
                stream = stdin if source == "-" else stack.enter_context(download(source)).stream
                with open(spooled, "wb") as out:
                    shutil.copyfileobj(stream, out)
            if not _unpack(spooled, root):  # the stream was the Dockerfile itself
                yield BuildContext(root, spooled.read_text(errors="replace"), "Dockerfile")
                return
            text, name = _dockerfile(root, dockerfile, None if source == "-" else stdin, local=False)
        yield BuildContext(root, text, name)
