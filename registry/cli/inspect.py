"""`inspect`, `history` and `diff`: looking at images and containers without changing them, in the
shapes Docker prints, so scripts written against `docker inspect` find the same fields."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.cli.images import client_options
from registry.client.units import age, human_size

if TYPE_CHECKING:
    from registry.client.store import ImageStore, LocalImage
    from registry.runtime.state import Container, ContainerStore


def register(commands: Any) -> None:
    store, _ = client_options()
    inspect = commands.add_parser(
        "inspect", help="low-level information on containers or images, as JSON", parents=[store]
    )
    inspect.add_argument("--type", choices=("container", "image"), help="look only for this kind")
    inspect.add_argument("names", nargs="+", metavar="NAME", help="container or image")
    inspect.set_defaults(run=run_inspect)

    history = commands.add_parser("history", help="the steps an image was made of", parents=[store])
    history.add_argument("--no-trunc", action="store_true", help="full IDs and commands")
    history.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    history.add_argument("image")
    history.set_defaults(run=run_history)

    diff = commands.add_parser("diff", help="files a container added (A), changed (C) or deleted (D)")
    diff.add_argument("container")
    diff.set_defaults(run=run_diff)


def _time(moment: float | None) -> str:
    if not moment:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def container_document(store: ContainerStore, container: Container) -> dict[str, Any]:
    from registry.runtime.ports import PortMapping
    from registry.runtime.restart import RestartPolicy

    directory = store.directory(container)
    policy = RestartPolicy.parse(container.restart)
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in container.ports:
        mapping = PortMapping.parse(spec)
        bindings.setdefault(f"{mapping.container_port}/tcp", []).append(
            {"HostIp": mapping.host_ip, "HostPort": str(mapping.host_port)}
        )
    running = container.running
    driver = "overlay2" if container.storage == "overlay" else "vfs"
    return {
        "Id": container.id,
        "Created": _time(container.created),
        "Path": container.args[0] if container.args else "",
        "Args": container.args[1:],
        "State": {
            "Status": "running" if running else container.status,
            "Running": running,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": container.pid if running else 0,
            "ExitCode": container.exit_code or 0,
            "Error": "",
            "StartedAt": _time(container.started),
            "FinishedAt": _time(container.finished if not running else None),
        },
        "Image": container.image_id,
        "Name": "/" + container.name,
        "RestartCount": container.restart_count,
        "Driver": driver,
        "Platform": "linux",
        "LogPath": str(directory / "output.log"),
        "HostConfig": {
            "Binds": container.volumes,
            "NetworkMode": container.network,
            "PortBindings": bindings,
            "RestartPolicy": {"Name": policy.name, "MaximumRetryCount": policy.maximum or 0},
            "AutoRemove": container.auto_remove,
            "Memory": container.memory or 0,
            "PidsLimit": container.pids,
            "Init": container.init,
        },
        "GraphDriver": {
            "Name": driver,
            "Data": {
                "LowerDir": container.lower,
                "UpperDir": str(directory / "upper"),
                "WorkDir": str(directory / "work"),
                "MergedDir": str(directory / "rootfs"),
            }
            if container.storage == "overlay"
            else {"MergedDir": str(directory / "rootfs")},
        },
        "Mounts": [_mount(spec) for spec in container.volumes],
        "Config": {
            "Hostname": container.hostname,
            "User": container.user,
            "Tty": container.tty,
            "OpenStdin": container.interactive,
            "Env": container.env,
            "Cmd": container.args,
            "Image": container.image,
            "WorkingDir": container.workdir,
            "ExposedPorts": {port: {} for port in bindings},
        },
        "NetworkSettings": {"Ports": bindings},
    }


def _mount(spec: str) -> dict[str, Any]:
    host, _, rest = spec.partition(":")
    target, _, mode = rest.partition(":")
    return {"Type": "bind", "Source": host, "Destination": target, "Mode": mode, "RW": mode != "ro"}


def image_document(store: ImageStore, image: LocalImage) -> dict[str, Any]:
    from registry.client.unpacked import unpacked_size

    references = next(
        (
            listing.references
            for listing in store.list_images()
            if listing.image.manifest_digest == image.manifest_digest
        ),
        [],
    )
    repositories = {
        reference.rsplit(":", 1)[0] if "@" not in reference else reference.split("@")[0]
        for reference in references
    }
    config = image.config
    return {
        "Id": image.config_digest,
        "RepoTags": [reference for reference in references if "@" not in reference],
        "RepoDigests": sorted(f"{repository}@{image.manifest_digest}" for repository in repositories),
        "Parent": "",
        "Comment": (config.get("history") or [{}])[-1].get("comment", ""),
        "Created": config.get("created", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config", {}),
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", ""),
        "Size": unpacked_size(store, image),
        "RootFS": {"Type": "layers", "Layers": config.get("rootfs", {}).get("diff_ids", [])},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def run_inspect(args: argparse.Namespace) -> int:
    from registry.client.store import ImageNotFound, ImageStore
    from registry.runtime.state import ContainerNotFound, ContainerStore

    containers, images = ContainerStore(), ImageStore(args.root)
    documents, status = [], 0
    for name in args.names:
        try:
            if args.type != "image":
                try:
                    documents.append(container_document(containers, containers.find(name)))
                    continue
                except ContainerNotFound:
                    if args.type == "container":
                        raise
            documents.append(image_document(images, images.image(name)))
        except (ContainerNotFound, ImageNotFound):
            print(f"registry: no such object: {name}", file=sys.stderr)
            status = 1
    print(json.dumps(documents, indent=4))
    return status


def run_history(args: argparse.Namespace) -> int:
    from registry.client.store import ImageNotFound, ImageStore

    store = ImageStore(args.root)
    try:
        image = store.image(args.image)
    except ImageNotFound as error:
        print(f"registry: {error}", file=sys.stderr)
        return 1
    layers = iter(image.layers)
    rows = []
    for step in image.config.get("history") or []:
        layer = None if step.get("empty_layer") else next(layers, None)
        size = _layer_size(layer.path) if layer is not None else 0
        rows.append((step, size))
    rows.reverse()  # newest first, as Docker lists them
    if args.quiet:
        print(image.config_digest if args.no_trunc else image.id)
        return 0
    table = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for position, (step, size) in enumerate(rows):
        shown_id = (image.config_digest if args.no_trunc else image.id) if position == 0 else "<missing>"
        created_by = step.get("created_by", "")
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        table.append(
            [shown_id, age(step.get("created")), created_by, human_size(size), step.get("comment", "")]
        )
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _layer_size(path: Path) -> int:
    """A layer's size in the store (compressed, as the registry holds it)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def run_diff(args: argparse.Namespace) -> int:
    from registry.runtime.changes import RUNTIME_MOUNTS, copy_changes, overlay_changes, without_mount_points
    from registry.runtime.state import ContainerNotFound, ContainerStore

    store = ContainerStore()
    try:
        container = store.find(args.container)
    except ContainerNotFound as error:
        print(f"registry: {error}", file=sys.stderr)
        return 1
    directory, lower = store.directory(container), Path(container.lower)
    if container.storage == "overlay":
        changes = overlay_changes(directory / "upper", lower)
    else:
        changes = copy_changes(directory / "rootfs", lower)
    volumes = tuple("/" + spec.split(":")[1].strip("/") for spec in container.volumes)
    for kind, path in without_mount_points(changes, RUNTIME_MOUNTS + volumes):
        print(f"{kind} {path}")
    return 0
