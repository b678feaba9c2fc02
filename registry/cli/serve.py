"""`registry serve` and `registry migrate`."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry.config import AUTH_MODES, SERVERS, Settings, load_settings, settings_to_env

# Server modules (SQLAlchemy, Alembic, starlette) are imported inside the commands that need them:
# every `registry` command builds this parser, and client commands must start fast.

log = logging.getLogger("registry")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every command that opens the registry's data takes."""
    parser.add_argument("--config", type=Path, help="YAML settings file (REGISTRY_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data folder (REGISTRY_DATA_DIR)")
    parser.add_argument("--database-url", help="index database URL (REGISTRY_DATABASE_URL)")


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {"data_dir": args.data_dir, "database_url": args.database_url, **extra}
    return load_settings(args.config, overrides)


def prepare(settings: Settings) -> None:
    """Create the data folders and bring the index schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.blob_root.mkdir(parents=True, exist_ok=True)
    from registry.index.migrate import upgrade

    upgrade(settings.index_url)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def check_exposure(settings: Settings) -> None:
    """Safe by default: a registry reachable beyond this machine without authentication must be the
    operator's explicit choice (`allow_anonymous_remote`), and then it is logged at every start."""
    if settings.auth != "none" or is_loopback(settings.host):
        return
    if not settings.allow_anonymous_remote:
        raise ValueError(
            f"refusing to serve {settings.listen} without authentication: use --auth basic|token, "
            "or set allow_anonymous_remote: true to let anyone who can reach it push and delete"
        )
    log.warning(
        "serving %s without authentication: anyone who can reach it may push and delete", settings.listen
    )


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the registry server")
    add_settings_arguments(serve)
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:5000)")
    serve.add_argument("--workers", type=int, help="server processes; 0 means one per CPU core")
    serve.add_argument("--server", choices=SERVERS, help="HTTP engine (default granian)")
    serve.add_argument("--auth", choices=AUTH_MODES, help="authentication mode (default none)")
    serve.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    serve.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    serve.add_argument("--tls-client-ca", help="require client certificates issued by this PEM CA bundle")
    serve.set_defaults(run=run_serve)

    migrate = commands.add_parser("migrate", help="apply index schema migrations and exit")
    add_settings_arguments(migrate)
    migrate.set_defaults(run=run_migrate)


def _set_up(settings: Settings) -> None:
    """Migrate the index and check the auth settings (making the token key on first start) once,
    before any worker starts, so every worker finds them ready and none trips over bad settings."""
    from registry.auth.authority import Authority
    from registry.index.users import SQLUserDirectory

    prepare(settings)
    Authority.build(settings, SQLUserDirectory(settings.index_url))


def _child_main(work: Callable[[Settings], None], settings: Settings) -> None:
    try:
        work(settings)
    except (ValueError, OSError) as error:
        print(f"registry: {error}", file=sys.stderr)
        sys.exit(2)


def _run_in_child(work: Callable[[Settings], None], settings: Settings) -> None:
    """Run start-up work in a short-lived process: what it imports (SQLAlchemy, Alembic) then never
    weighs on the long-lived process that supervises the workers."""
    child = multiprocessing.get_context("spawn").Process(target=_child_main, args=(work, settings))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(child.exitcode)


def run_migrate(args: argparse.Namespace) -> int:
    prepare(settings_from(args))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from registry.logs import configure as configure_logging
    from registry.observe.multiprocess import MetricsDirectory
    from registry.observe.startup import start_line

    settings = settings_from(
        args,
        listen=args.listen,
        workers=args.workers,
        server=args.server,
        auth=args.auth,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
    )
    configure_logging(settings.log_level, settings.log_formatter)
    check_exposure(settings)
    _run_in_child(_set_up, settings)
    # Workers (and this process, when there is one) rebuild the settings from the environment.
    os.environ.update(settings_to_env(settings))
    workers = settings.workers or os.cpu_count() or 1
    if settings.server == "granian":
        from registry.serving.granian_server import run
    else:
        from registry.serving.hypercorn_server import run
    log.info("%s", start_line(settings, settings.server, workers))
    metrics = MetricsDirectory()
    try:
        return run(settings, workers)
    finally:
        metrics.remove()
        log.info("registry on %s stopped", settings.listen)
