"""`commit`: a container's changes as a new image, as `docker commit` makes it.

The new image is the container's image plus one layer: what the container changed (runtime.changes,
without the runtime's own mount points and the container's volumes, which Docker leaves out too),
written as the builder writes RUN's layers. Its config is the container's as it ran (the command, the
environment, the working folder and user), then the `--change` instructions, then the author and a
history entry with the message. While the layer is read, the container's processes are stopped with
SIGSTOP (Docker's `--pause`, the default), so no half-written file is taken.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from registry.build.errors import BuildError
from registry.build.layers import store_changes
from registry.build.owners import Owners, image_owners
from registry.build.parser import parse_instruction
from registry.build.settings import StageFlags, apply
from registry.build.state import ImageState, timestamp
from registry.client.store import ImageNotFound, ImageStore, LocalImage
from registry.runtime.changes import RUNTIME_MOUNTS, copy_changes, overlay_changes, without_mount_points
from registry.runtime.state import Container, ContainerStore

# What `docker commit --change` accepts.
CHANGES: Final = frozenset(
    {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR"}
)


def _namespace_members(pid: int) -> list[int]:
    """Every process in the PID namespace of `pid` (the container's), seen from the host."""
    target = os.readlink(f"/proc/{pid}/ns/pid")
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == target:
                    members.append(int(entry))
    return members


@contextlib.contextmanager
def paused(container: Container) -> Iterator[None]:
    """The running container's processes stopped (SIGSTOP) for the time of the block."""
    if not container.running or container.pid is None:
        yield
        return
    stopped = []
    try:
        for member in _namespace_members(container.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGSTOP)
                stopped.append(member)
        yield
    finally:
        for member in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGCONT)


def _as_run(state: ImageState, container: Container) -> None:
    """The config the container ran with: its command (split again into entrypoint and arguments
    where the image's entrypoint leads it), environment (without the runtime's HOSTNAME), folder, user."""
    settings = state.settings
    entrypoint = settings.get("Entrypoint") or []
    if container.args[: len(entrypoint)] == entrypoint:
        settings["Cmd"] = container.args[len(entrypoint) :] or None
    else:
        settings["Entrypoint"], settings["Cmd"] = None, container.args
    settings["Env"] = [item for item in container.env if not item.startswith("HOSTNAME=")]
    settings["WorkingDir"] = container.workdir
    if container.user:
        settings["User"] = container.user


def _changes(container: Container, directory: Path) -> tuple[Path, list[tuple[str, str]]]:
    lower = Path(container.lower)
    volumes = tuple("/" + spec.split(":")[1].strip("/") for spec in container.volumes)
    if container.storage == "overlay":
        root, found = directory / "upper", overlay_changes(directory / "upper", lower)
    else:
        root, found = directory / "rootfs", copy_changes(directory / "rootfs", lower)
    return root, without_mount_points(found, RUNTIME_MOUNTS + volumes)


def commit(
    images: ImageStore,
    containers: ContainerStore,
    container: Container,
    reference: str | None,
    author: str = "",
    message: str = "",
    changes: Sequence[str] = (),
    pause: bool = True,
) -> LocalImage:
    try:
        state = ImageState.from_image(images.image(container.image_id))
    except ImageNotFound:
        raise BuildError(
            f"the image of container {container.name} ({container.image}) is no longer in the local store"
        ) from None
    _as_run(state, container)
    flags = StageFlags()
    for number, text in enumerate(changes, start=1):
        instruction = parse_instruction(text, number, "--change")
        if instruction.keyword not in CHANGES:
            raise BuildError(f"--change {text!r}: {instruction.keyword} cannot be a change to commit")
        apply(state, flags, instruction, state.env, "\\")
    owners = Owners()
    if owners.rootless:
        owners.image = image_owners(state.layers, state.diff_ids)
    with images.lease(), paused(container) if pause else contextlib.nullcontext():
        root, found = _changes(container, containers.directory(container))
        layer = store_changes(images, root, found, None, owners)
        created = timestamp(None)
        state.record(created, shlex.join(container.args), layer, "")
        entry = state.config["history"][-1]
        if author:
            state.config["author"] = entry["author"] = author
        if message:
            entry["comment"] = message
        return state.save(images, reference)
