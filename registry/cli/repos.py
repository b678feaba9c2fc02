"""`registry du [REPOSITORY]` and `registry repo delete NAME`: what repositories hold, and removing one.

Both open the same index as `serve` and may run while it serves. `du` counts the blobs that manifests
reference (a blob shared between repositories once in the total, as `docker system df` counts shared
layers); `repo delete` removes a repository's tags and manifests in one transaction, leaving its blobs'
bytes to the collector (`registry gc`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from registry.cli.failures import database_errors, first_line, shown
from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import require_index
from registry.client.units import human_size
from registry.lifecycle.settings import is_repository_glob
from registry.types import is_valid_name

if TYPE_CHECKING:
    # Not at run time: every `registry` command imports this module, and services load SQLAlchemy.
    from registry.services.repositories import RepositoryService, Usage

T = TypeVar("T")


def register(commands: Any) -> None:
    du = commands.add_parser("du", help="bytes each repository holds, and the total (shared blobs once)")
    add_settings_arguments(du)
    du.add_argument("repository", nargs="?", default="*", help="a repository, or a glob such as 'team/*'")
    du.add_argument("--json", action="store_true", help="print what GET /admin/usage answers")
    du.set_defaults(run=_run_du)

    repo = commands.add_parser("repo", help="manage whole repositories")
    actions = repo.add_subparsers(dest="action", required=True, metavar="ACTION")
    delete = actions.add_parser(
        "delete", help="delete a repository's tags and manifests (gc takes the bytes)"
    )
    add_settings_arguments(delete)
    delete.add_argument("name")
    delete.set_defaults(run=_run_delete)


def _with_repositories(args: argparse.Namespace, work: Callable[[RepositoryService], Awaitable[T]]) -> T:
    """Run `work` on the repositories service of the registry the settings name; a database failure is
    one line naming the index."""
    from registry.index import SQLIndex
    from registry.services.repositories import RepositoryService

    settings = settings_from(args)
    require_index(settings)

    async def run() -> T:
        index = SQLIndex(settings.index_url)
        await index.open()
        try:
            return await work(RepositoryService(index))
        finally:
            await index.close()

    try:
        return asyncio.run(run())
    except (OSError, *database_errors()) as error:  # OSError: a PostgreSQL server that does not answer
        raise ValueError(
            f"cannot use the index at {shown(settings.index_url)}: {first_line(error)}"
        ) from error


def _run_du(args: argparse.Namespace) -> int:
    if not is_repository_glob(args.repository):
        raise ValueError(f"{args.repository!r} is neither a repository name nor a glob such as 'team/*'")
    usage: Usage = _with_repositories(args, lambda service: service.usage(args.repository))
    if args.json:
        print(json.dumps(usage.as_json(), indent=2))
        return 0
    rows = [("REPOSITORY", "BLOBS", "SIZE", "BYTES")]
    rows += [
        (item.name, str(item.blobs), human_size(item.bytes), str(item.bytes))
        for item in usage.report.repositories
    ]
    rows.append(
        (
            "TOTAL (shared blobs once)",
            str(usage.report.blobs),
            human_size(usage.report.bytes),
            str(usage.report.bytes),
        )
    )
    if usage.unreferenced is not None:
        rows.append(("unreferenced (gc)", "", human_size(usage.unreferenced), str(usage.unreferenced)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _run_delete(args: argparse.Namespace) -> int:
    if not is_valid_name(args.name):
        raise ValueError(f"{args.name!r} is not a repository name")
    if not _with_repositories(args, lambda service: service.delete(args.name)):
        raise ValueError(f"no repository {args.name}: `registry du` lists them")
    print(f"deleted repository {args.name}: its tags and manifests; `registry gc` reclaims the bytes")
    return 0
