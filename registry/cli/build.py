"""`registry build`: an image from a Dockerfile and a context, with no daemon (see registry.build)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from registry.cli.images import _pull, _reporting, client_options

if TYPE_CHECKING:
    from registry.client.store import LocalImage


def register(commands: Any) -> None:
    store, network = client_options()
    build = commands.add_parser(
        "build", help="build an image from a Dockerfile", parents=[store, network], description=__doc__
    )
    build.add_argument(
        "-t", "--tag", action="append", default=[], help="NAME[:TAG] for the image (repeatable)"
    )
    build.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)")
    build.add_argument(
        "--build-arg", action="append", default=[], metavar="K=V", help="set an ARG (K alone: from here)"
    )
    build.add_argument("--target", help="the stage to build (default: the last)")
    build.add_argument("--no-cache", action="store_true", help="run every step, using no cached result")
    build.add_argument("--platform", help="os/arch[/variant] of base images to pull")
    build.add_argument(
        "--network",
        choices=("host", "none"),
        default="host",
        help="RUN's network (default: host, as Docker's)",
    )
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    build.add_argument("context", help="a folder, - (a tar on stdin), a tarball URL or a git URL")
    build.set_defaults(run=_reporting(run_build))

    commit = commands.add_parser("commit", help="make an image of a container's changes", parents=[store])
    commit.add_argument("-a", "--author", default="", help='author, e.g. "Jane Doe <jane@example.com>"')
    commit.add_argument("-m", "--message", default="", help="commit message")
    commit.add_argument(
        "-c",
        "--change",
        action="append",
        default=[],
        help="a Dockerfile instruction (CMD, ENV, ...) to apply",
    )
    commit.add_argument(
        "-p",
        "--pause",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop the container's processes while its changes are read (default: on)",
    )
    commit.add_argument("container")
    commit.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    commit.set_defaults(run=run_commit)


def _build_args(items: list[str]) -> dict[str, str]:
    """`--build-arg K=V`, or `K` alone for this environment's K (left unset when there is none)."""
    from registry.runtime.spec import merge_env

    return {name: value for name, _, value in (item.partition("=") for item in merge_env([], items))}


def run_build(args: argparse.Namespace) -> int:
    from registry.build.builder import Builder, BuildOptions, source_date_epoch
    from registry.build.context import open_context
    from registry.build.errors import BuildError
    from registry.client import reference as references
    from registry.client.progress import Progress
    from registry.client.store import ImageNotFound, ImageStore
    from registry.runtime.containers import Runtime
    from registry.runtime.state import ContainerStore
    from registry.unpack import UnpackError

    out = open(os.devnull, "w") if args.quiet else sys.stdout  # noqa: SIM115
    store = ImageStore(args.root)

    def image(reference: str, platform: str | None) -> LocalImage:
        try:
            return store.image(reference)
        except ImageNotFound:
            pulling = argparse.Namespace(**{**vars(args), "platform": platform, "quiet": args.quiet})
            pulled = _pull(pulling, reference, Progress(out))
            return store.image(pulled.reference)

    try:
        build_args = _build_args(args.build_arg)
        options = BuildOptions(
            tags=[references.normalize(tag) for tag in args.tag],
            build_args=build_args,
            target=args.target,
            no_cache=args.no_cache,
            platform=args.platform,
            network=args.network,
            epoch=source_date_epoch(os.environ, build_args),
        )
        with open_context(args.context, args.file, sys.stdin.buffer) as context:
            built = Builder(store, Runtime(ContainerStore()), image, options, out).build(context)
    except (BuildError, UnpackError) as error:
        print(f"registry: build: {error}", file=sys.stderr)
        return 1
    finally:
        if args.quiet:
            out.close()
    if args.quiet:
        print(built.config_digest)
    return 0


def run_commit(args: argparse.Namespace) -> int:
    from registry.build.commit import commit
    from registry.build.errors import BuildError
    from registry.client import reference as references
    from registry.client.store import ImageStore
    from registry.runtime.state import ContainerNotFound, ContainerStore

    containers = ContainerStore()
    try:
        reference = str(references.parse(args.reference)) if args.reference else None
        container = containers.find(args.container)
        image = commit(
            ImageStore(args.root), containers, container, reference, args.author, args.message,
            args.change, args.pause,
        )  # fmt: skip
    except (ContainerNotFound, BuildError, ValueError) as error:
        print(f"registry: {error}", file=sys.stderr)
        return 1
    print(image.config_digest)
    return 0
