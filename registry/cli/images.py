"""Image commands of the bundled client, named and printed as Docker's: pull, push, images, rmi, tag, save,
load, import, login, logout, `image ...` (ls, rm, prune and the others again) and `system df`.

Each command is a thin function over registry.client: parse, call, print. Every command takes `--root`
(the local image store, default REGISTRY_CLIENT_ROOT or ~/.local/share/registry/client), before or after
the command's name; the ones that
talk to a registry take `--insecure`, `--ca-cert` and `--authfile`.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import functools
import getpass
import io
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from registry.cli.prompts import require_terminal
from registry.client import reference as references
from registry.client.errors import ClientError
from registry.client.reference import Reference
from registry.client.store import ImageListing, ImageNotFound, ImageStore
from registry.client.units import age, human_size, parse_time

if TYPE_CHECKING:
    from registry.client.credentials import Credentials
    from registry.client.distribution import RegistryClient
    from registry.client.progress import Progress
    from registry.client.pull import PullResult

T = TypeVar("T")
Command = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------------------------- plumbing


def client_options() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """Parent parsers: the local store's option, and how to reach a registry (also `run`'s, which pulls)."""
    store = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: left out, it must not reset a `registry --root DIR COMMAND` given before the command.
    store.add_argument(
        "--root", type=Path, default=argparse.SUPPRESS, help="local image store (REGISTRY_CLIENT_ROOT)"
    )
    network = argparse.ArgumentParser(add_help=False)
    network.add_argument("--insecure", action="store_true", help="allow HTTPS without verification, or HTTP")
    network.add_argument("--ca-cert", type=Path, help="PEM file of CA certificates to trust for the registry")
    network.add_argument("--authfile", type=Path, help="credentials file (REGISTRY_AUTH_FILE)")
    return store, network


def _reporting(command: Command) -> Command:
    """Client failures are one line on stderr and exit status 1, as Docker's are, not a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except KeyboardInterrupt:
            print("registry: interrupted", file=sys.stderr)
            return 130
        except Exception as error:
            # httpx's errors (a timeout, a reset) count too, if the command loaded httpx at all: importing
            # it here would cost every local command a tenth of a second.
            httpx = sys.modules.get("httpx")
            if not isinstance(error, ClientError | ImageNotFound) and not (
                httpx and isinstance(error, httpx.HTTPError)
            ):
                raise
            print(f"registry: {error}", file=sys.stderr)
            return 1

    return run


def _store(args: argparse.Namespace) -> ImageStore:
    return ImageStore(args.root)


def _stored_credentials(args: argparse.Namespace, domain: str) -> Credentials | None:
    from registry.client.credentials import CredentialStore

    return CredentialStore(args.authfile).get(domain)


def _connected(
    args: argparse.Namespace,
    api_host: str,
    credentials: Credentials | None,
    work: Callable[[RegistryClient], Coroutine[Any, Any, T]],
) -> T:
    """Run `work(client)` against the registry at `api_host`."""
    from registry.client.distribution import RegistryClient

    async def main() -> T:
        async with RegistryClient(api_host, credentials, args.insecure, args.ca_cert) as client:
            return await work(client)

    return asyncio.run(main())


def _progress(args: argparse.Namespace) -> Progress:
    from registry.client.progress import Progress

    if args.quiet:
        return Progress(io.StringIO(), interactive=False)
    return Progress(sys.stdout)


# ---------------------------------------------------------------------------------------------- pull, push


def _pull(args: argparse.Namespace, text: str, progress: Progress) -> PullResult:
    from registry.client.platforms import Platform
    from registry.client.pull import Puller

    reference = references.parse(text)
    platform = Platform.parse(args.platform) if args.platform else None
    return _connected(
        args,
        reference.api_host,
        _stored_credentials(args, reference.domain),
        lambda client: Puller(_store(args), client, progress, platform).pull(reference),
    )


@_reporting
def pull_for_run(args: argparse.Namespace) -> int:
    """Pull the image `registry run` did not find, as Docker does; progress goes to stderr, since
    stdout is the container's."""
    from registry.client.progress import Progress

    print(f"Unable to find image {args.image!r} locally", file=sys.stderr)
    result = _pull(args, args.image, Progress(sys.stderr))
    print(f"Digest: {result.digest}", file=sys.stderr)
    return 0


def run_pull(args: argparse.Namespace) -> int:
    progress = _progress(args)
    result = _pull(args, args.reference, progress)
    progress.message(f"Digest: {result.digest}")
    status = (
        "Downloaded newer image for" if result.updated or result.downloaded else "Image is up to date for"
    )
    progress.message(f"Status: {status} {references.familiar(result.reference)}")
    print(result.reference)
    return 0


def run_push(args: argparse.Namespace) -> int:
    from registry.client.push import Pusher

    store = _store(args)
    target = references.parse(args.reference)
    image = store.image(str(target))
    progress = _progress(args)
    result = _connected(
        args,
        target.api_host,
        _stored_credentials(args, target.domain),
        lambda client: Pusher(store, client, progress).push(image, target),
    )
    if args.quiet:
        print(result.reference)
    return 0


# ---------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class _Row:
    repository: str
    tag: str
    digest: str
    listing: ImageListing

    @property
    def created(self) -> datetime:
        moment = parse_time(self.listing.image.config.get("created") or "")
        return moment or datetime.min.replace(tzinfo=UTC)


def _rows(listings: list[ImageListing]) -> list[_Row]:
    rows = []
    for listing in listings:
        for name in listing.references:
            parsed = references.parse(name, default_tag=False)
            rows.append(
                _Row(
                    parsed.familiar_repository, parsed.tag or "<none>", listing.image.manifest_digest, listing
                )
            )
        if not listing.references:
            rows.append(_Row("<none>", "<none>", "<none>", listing))
    return sorted(rows, key=lambda row: (row.created, row.repository, row.tag), reverse=True)


def _filter(rows: list[_Row], filters: list[str], wanted: Reference | None) -> list[_Row]:
    for text in filters:
        key, equals, value = text.partition("=")
        if not equals:
            raise ValueError(f"bad filter {text!r}: expected KEY=VALUE")
        if key == "dangling":
            if value not in ("true", "false"):
                raise ValueError(f"bad filter {text!r}: dangling is true or false")
            rows = [row for row in rows if (not row.listing.references) == (value == "true")]
        elif key == "reference":
            rows = [row for row in rows if _reference_matches(row, value)]
        elif key == "label":
            label, has_value, label_value = value.partition("=")
            rows = [row for row in rows if _label_matches(row, label, label_value if has_value else None)]
        else:
            raise ValueError(f"invalid filter {key!r} (dangling, reference, label)")
    if wanted is not None:
        rows = [
            row
            for row in rows
            if row.repository == wanted.familiar_repository and wanted.tag in (None, row.tag)
        ]
    return rows


def _reference_matches(row: _Row, pattern: str) -> bool:
    return fnmatch.fnmatchcase(row.repository, pattern) or fnmatch.fnmatchcase(
        f"{row.repository}:{row.tag}", pattern
    )


def _label_matches(row: _Row, label: str, value: str | None) -> bool:
    labels = row.listing.image.config.get("config", {}).get("Labels") or {}
    return label in labels and (value is None or labels[label] == value)


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(headers[i]), *(len(row[i]) for row in rows)]) for i in range(len(headers))]
    for line in [headers, *rows]:
        print("   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def run_images(args: argparse.Namespace) -> int:
    from registry.client.unpacked import unpacked_size

    store = _store(args)
    wanted = references.parse(args.repository, default_tag=False) if args.repository else None
    rows = _filter(_rows(store.list_images()), args.filter, wanted)
    if args.quiet:
        for image_id in dict.fromkeys(_image_id(row, args.no_trunc) for row in rows):
            print(image_id)
        return 0
    headers = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED", "SIZE"]
    table = [
        [
            row.repository,
            row.tag,
            *([row.digest] if args.digests else []),
            _image_id(row, args.no_trunc),
            age(row.listing.image.config.get("created")),
            human_size(unpacked_size(store, row.listing.image)),
        ]
        for row in rows
    ]
    _table(headers, table)
    return 0


def _image_id(row: _Row, full: bool) -> str:
    return row.listing.image.config_digest if full else row.listing.image.id


# ---------------------------------------------------------------------------------------------- removing


def run_rmi(args: argparse.Namespace) -> int:
    store = _store(args)
    before = _layer_chains(store)
    status = 0
    for name in args.images:
        try:
            _remove_one(store, name, args.force)
        except (ImageNotFound, ValueError) as error:
            print(f"registry: {error}", file=sys.stderr)
            status = 1
    store.collect_garbage()
    _remove_unpacked(before - _layer_chains(store), _layer_chains(store))
    return status


def _layer_chains(store: ImageStore) -> set[tuple[str, ...]]:
    """The diff_ids of each local image: what names its unpacked root in the runtime's cache."""
    return {
        tuple(listing.image.config.get("rootfs", {}).get("diff_ids", [])) for listing in store.list_images()
    }


def _remove_unpacked(removed: set[tuple[str, ...]], kept: set[tuple[str, ...]]) -> None:
    """Unpacked roots go with their image, as Docker's do, unless a container still runs on one."""
    if not removed:
        return
    from registry.runtime.containers import Runtime
    from registry.runtime.state import ContainerStore

    runtime = Runtime(ContainerStore())
    runtime.remove_roots([runtime.cache.path(diff_ids) for diff_ids in removed], kept)


def _remove_one(store: ImageStore, name: str, force: bool) -> None:
    image = store.image(name)
    if image.reference is not None:
        print(f"Untagged: {references.familiar(image.reference)}")
        if store.untag(image.reference):
            print(f"Deleted: {image.config_digest}")
        return
    # By ID or digest: every manifest of that image, with all its references.
    same = [listing for listing in store.list_images() if listing.image.config_digest == image.config_digest]
    names = [name for listing in same for name in listing.references]
    if len({references.parse(n).repository for n in names}) > 1 and not force:
        raise ValueError(
            f"conflict: unable to delete {image.id} (must be forced) - "
            "image is referenced in multiple repositories"
        )
    for listing in same:
        for removed in store.remove(listing.image.manifest_digest):
            print(f"Untagged: {references.familiar(removed)}")
    print(f"Deleted: {image.config_digest}")


def run_prune(args: argparse.Namespace) -> int:
    if not args.force:
        require_terminal("to confirm", "--force to remove the dangling images without asking")
        answer = input(
            "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    store = _store(args)
    deleted = []
    for digest in store.dangling():
        deleted.append(store.image(digest).config_digest)
        store.remove(digest)
    freed = store.collect_garbage(include_staging=True)
    if deleted:
        print("Deleted Images:")
        for config_digest in deleted:
            print(f"deleted: {config_digest}")
        print()
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


# ---------------------------------------------------------------------------------------------- tag, df


def run_tag(args: argparse.Namespace) -> int:
    store = _store(args)
    store.tag(store.image(args.source), args.target)
    return 0


def run_df(args: argparse.Namespace) -> int:
    """Docker's table: images (ACTIVE: used by a container), containers (their writable layers; ACTIVE:
    running), local volumes (this client keeps no named volumes: a row of zeros, as Docker prints it
    when empty) and the build cache (ACTIVE: steps whose layer a local image holds)."""
    from registry.build.cache import StepCache
    from registry.client.usage import disk_usage
    from registry.runtime.state import ContainerStore, writable_size

    usage = disk_usage(_store(args))
    cache = StepCache(_store(args)).usage()
    containers = ContainerStore().all()
    in_use = {container.image_id for container in containers}
    writable = {container.id: writable_size(ContainerStore(), container) for container in containers}
    stopped = sum(
        size for container in containers if not container.running for size in [writable[container.id]]
    )
    _table(
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        [
            [
                "Images",
                str(len(usage.images)),
                str(sum(1 for item in usage.images if item.listing.image.config_digest in in_use)),
                human_size(usage.size),
                human_size(usage.reclaimable) + _share(usage.reclaimable, usage.size),
            ],
            [
                "Containers",
                str(len(containers)),
                str(sum(1 for container in containers if container.running)),
                human_size(sum(writable.values())),
                human_size(stopped) + _share(stopped, sum(writable.values())),
            ],
            ["Local Volumes", "0", "0", human_size(0), human_size(0)],
            [
                "Build Cache",
                str(cache.entries),
                str(cache.active),
                human_size(cache.size),
                human_size(cache.reclaimable) + _share(cache.reclaimable, cache.size),
            ],
        ],
    )
    if args.verbose:
        print("\nImages space usage:\n")
        rows = []
        for item in usage.images:
            names = item.listing.references or [""]
            for name in names:
                parsed = references.parse(name, default_tag=False) if name else None
                rows.append(
                    [
                        parsed.familiar_repository if parsed else "<none>",
                        (parsed.tag if parsed else None) or "<none>",
                        item.listing.image.id,
                        age(item.listing.image.config.get("created")),
                        human_size(item.listing.size),
                        human_size(item.shared),
                        human_size(item.unique),
                    ]
                )
        _table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE"], rows)
    return 0


def _share(part: int, whole: int) -> str:
    return f" ({100 * part // whole}%)" if whole else ""


# ---------------------------------------------------------------------------------------------- archives


def run_save(args: argparse.Namespace) -> int:
    from registry.client.archive import save

    if args.output:
        with open(args.output, "wb") as out:
            save(_store(args), args.images, out, args.format)
        return 0
    if sys.stdout.isatty():
        raise ValueError("refusing to write an archive to a terminal: use -o FILE or redirect the output")
    save(_store(args), args.images, sys.stdout.buffer, args.format)
    return 0


def run_load(args: argparse.Namespace) -> int:
    from registry.client.archive import load

    store = _store(args)
    if args.input:
        with open(args.input, "rb") as source:
            loaded = load(store, source)
    else:
        loaded = load(store, sys.stdin.buffer)
    for name in loaded:
        print(f"Loaded image ID: {name}" if name.startswith("sha256:") else f"Loaded image: {name}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from registry.client.importer import import_rootfs
    from registry.client.platforms import Platform

    platform = Platform.parse(args.platform) if args.platform else None
    store = _store(args)
    if args.file == "-":
        image = import_rootfs(store, sys.stdin.buffer, args.reference, args.change, args.message, platform)
    else:
        with open(args.file, "rb") as source:
            image = import_rootfs(store, source, args.reference, args.change, args.message, platform)
    print(image.config_digest)
    return 0


# ---------------------------------------------------------------------------------------------- login


def _server(text: str | None) -> tuple[str, str]:
    """(domain, API host) of a login server: `host[:port]`, a URL, or nothing for Docker Hub."""
    name = (text or references.DEFAULT_DOMAIN).removeprefix("https://").removeprefix("http://").split("/")[0]
    if name in (references.DEFAULT_DOMAIN, references.LEGACY_DEFAULT_DOMAIN, references.DOCKER_HUB_API_HOST):
        return references.DEFAULT_DOMAIN, references.DOCKER_HUB_API_HOST
    return name, name


def run_login(args: argparse.Namespace) -> int:
    from registry.client.credentials import Credentials, CredentialStore

    domain, api_host = _server(args.server)
    username = args.username or (input("Username: ") if sys.stdin.isatty() else "")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = args.password or (getpass.getpass("Password: ") if sys.stdin.isatty() else "")
    if not username or not password:
        raise ValueError("a username and a password are needed (-u and -p or --password-stdin)")
    _connected(args, api_host, Credentials(username, password), lambda client: client.check_login())
    CredentialStore(args.authfile).set(domain, username, password)
    print("Login Succeeded")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    from registry.client.credentials import CredentialStore

    domain, _ = _server(args.server)
    if CredentialStore(args.authfile).remove(domain):
        print(f"Removing login credentials for {domain}")
    else:
        print(f"Not logged in to {domain}")
    return 0


# ---------------------------------------------------------------------------------------------- parsers


def register(commands: Any) -> None:
    store, network = client_options()
    _add_pull(commands.add_parser("pull", help="download an image from a registry", parents=[store, network]))
    _add_push(commands.add_parser("push", help="upload an image to a registry", parents=[store, network]))
    _add_images(commands.add_parser("images", help="list local images", parents=[store]))
    _add_rmi(commands.add_parser("rmi", help="remove local images", parents=[store]))
    _add_tag(commands.add_parser("tag", help="give a local image another reference", parents=[store]))
    _add_save(commands.add_parser("save", help="write images to a tar archive", parents=[store]))
    _add_load(commands.add_parser("load", help="read images from a tar archive", parents=[store]))
    _add_import(
        commands.add_parser("import", help="make an image of a root filesystem tarball", parents=[store])
    )
    _add_login(commands.add_parser("login", help="store credentials for a registry", parents=[network]))
    _add_logout(commands.add_parser("logout", help="forget the credentials of a registry", parents=[network]))

    image = commands.add_parser("image", help="manage local images")
    image_commands = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    _add_images(image_commands.add_parser("ls", aliases=["list"], help="list local images", parents=[store]))
    _add_rmi(image_commands.add_parser("rm", aliases=["remove"], help="remove local images", parents=[store]))
    _add_prune(image_commands.add_parser("prune", help="remove dangling images", parents=[store]))
    _add_pull(image_commands.add_parser("pull", help="download an image", parents=[store, network]))
    _add_push(image_commands.add_parser("push", help="upload an image", parents=[store, network]))
    _add_tag(image_commands.add_parser("tag", help="give an image another reference", parents=[store]))
    _add_save(image_commands.add_parser("save", help="write images to a tar archive", parents=[store]))
    _add_load(image_commands.add_parser("load", help="read images from a tar archive", parents=[store]))
    _add_import(image_commands.add_parser("import", help="import a root filesystem tarball", parents=[store]))

    system = commands.add_parser("system", help="the client's local state")
    system_commands = system.add_subparsers(dest="system_command", required=True, metavar="COMMAND")
    df = system_commands.add_parser("df", help="disk space used by local images", parents=[store])
    df.add_argument("-v", "--verbose", action="store_true", help="space used by each image")
    df.set_defaults(run=_reporting(run_df))


def _add_pull(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    parser.add_argument("--platform", help="os/arch[/variant] to pull from a multi-platform image")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image's reference")
    parser.set_defaults(run=_reporting(run_pull))


def _add_push(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", metavar="NAME[:TAG]")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the pushed reference")
    parser.set_defaults(run=_reporting(run_push))


def _add_images(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    parser.add_argument("-q", "--quiet", action="store_true", help="print image IDs only")
    parser.add_argument("--digests", action="store_true", help="show manifest digests")
    parser.add_argument("--no-trunc", action="store_true", help="show full image IDs")
    parser.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="dangling=true|false, reference=PATTERN, label=KEY[=VALUE]",
    )
    parser.set_defaults(run=_reporting(run_images))


def _add_rmi(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument(
        "-f", "--force", action="store_true", help="remove an image named in several repositories"
    )
    parser.set_defaults(run=_reporting(run_rmi))


def _add_prune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(run=_reporting(run_prune))


def _add_tag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    parser.set_defaults(run=_reporting(run_tag))


def _add_save(parser: argparse.ArgumentParser) -> None:
    from registry.client.archive import DOCKER_ARCHIVE, FORMATS

    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-o", "--output", type=Path, help="write to FILE instead of standard output")
    parser.add_argument("--format", choices=FORMATS, default=DOCKER_ARCHIVE, help="archive format")
    parser.set_defaults(run=_reporting(run_save))


def _add_load(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", type=Path, help="read from FILE instead of standard input")
    parser.add_argument("-q", "--quiet", action="store_true", help="accepted for Docker compatibility")
    parser.set_defaults(run=_reporting(run_load))


def _add_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE|-")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    parser.add_argument(
        "-c", "--change", action="append", default=[], help="Dockerfile instruction for the config"
    )
    parser.add_argument("-m", "--message", help="commit message for the image's history")
    parser.add_argument("--platform", help="os/arch[/variant] to record (default: the host's)")
    parser.set_defaults(run=_reporting(run_import))


def _add_login(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", nargs="?", metavar="SERVER")
    parser.add_argument("-u", "--username")
    parser.add_argument("-p", "--password")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.set_defaults(run=_reporting(run_login))


def _add_logout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", nargs="?", metavar="SERVER")
    parser.set_defaults(run=_reporting(run_logout))
