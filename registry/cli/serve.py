"""`registry serve` and `registry migrate`."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from typing import Any

from registry.cli.checks import check_before_start
from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import prepare
from registry.config import Settings, settings_to_env

# Server modules (SQLAlchemy, Alembic, starlette) are imported inside the commands that need them:
# every `registry` command builds this parser, and client commands must start fast.

log = logging.getLogger("registry")


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the registry server (a first start makes its data folder)")
    add_settings_arguments(serve, every=True)
    serve.set_defaults(run=run_serve)

    migrate = commands.add_parser("migrate", help="apply index schema migrations and exit")
    add_settings_arguments(migrate)
    migrate.add_argument("--create", action="store_true", help="make a new registry if there is none")
    migrate.set_defaults(run=run_migrate)


def _set_up(settings: Settings) -> None:
    """Migrate the index and check the auth settings (making the token key on first start) once,
    before any worker starts, so every worker finds them ready and none trips over bad settings."""
    from registry.auth.authority import Authority
    from registry.importer.detect import distribution_hint
    from registry.index.users import SQLUserDirectory

    prepare(settings, create=True)
    Authority.build(settings, SQLUserDirectory(settings.index_url))
    hint = distribution_hint(settings)
    if hint:
        log.warning("%s", hint)


def _child_main(work: Callable[[Settings], None], settings: Settings) -> None:
    from registry.logs import configure as configure_logging

    configure_logging(settings.log.level)  # the lines start-up logs (waiting for the database)
    try:
        work(settings)
    except (ValueError, OSError) as error:
        print(f"registry: {error}", file=sys.stderr)
        sys.exit(2)


def _run_in_child(work: Callable[[Settings], None], settings: Settings) -> None:
    """Run start-up work in a short-lived process: what it imports (SQLAlchemy, Alembic) then never
    weighs on the long-lived process that supervises the workers. Forked, not spawned: nothing runs
    in a second thread yet, and a spawn would leave multiprocessing's resource tracker process
    (13 MiB) running beside the server for its whole life."""
    child = multiprocessing.get_context("fork").Process(target=_child_main, args=(work, settings))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(child.exitcode)


def run_migrate(args: argparse.Namespace) -> int:
    prepare(settings_from(args), create=args.create)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from registry.logs import configure as configure_logging
    from registry.observe.multiprocess import MetricsDirectory
    from registry.observe.startup import start_line
    from registry.serving.supervision import mark_supervisor

    settings = settings_from(args)
    configure_logging(settings.log.level, settings.log.formatter)
    addresses = check_before_start(settings)
    _run_in_child(_set_up, settings)
    # Workers (and this process, when there is one) rebuild the settings from the environment.
    os.environ.update(settings_to_env(settings))
    workers = settings.server.workers or os.cpu_count() or 1

    mark_supervisor()
    if settings.server.engine == "granian":
        from registry.serving.granian_server import run
    else:
        from registry.serving.hypercorn_server import run
    log.info("%s", start_line(settings, settings.server.engine, workers, addresses))
    metrics = MetricsDirectory()
    try:
        return run(settings, workers, addresses)
    finally:
        metrics.remove()
        log.info("registry on %s stopped", settings.http.addr)
