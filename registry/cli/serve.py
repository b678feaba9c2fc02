"""`registry serve` and `registry migrate`."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from registry.config import Settings, load_settings, settings_to_env
from registry.index.migrate import upgrade

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
    upgrade(settings.index_url)


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the registry server")
    add_settings_arguments(serve)
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:5000)")
    serve.add_argument("--workers", type=int, help="server processes; 0 means one per CPU core")
    serve.set_defaults(run=run_serve)

    migrate = commands.add_parser("migrate", help="apply index schema migrations and exit")
    add_settings_arguments(migrate)
    migrate.set_defaults(run=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    prepare(settings_from(args))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from hypercorn.config import Config
    from hypercorn.run import run

    settings = settings_from(args, listen=args.listen, workers=args.workers)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    prepare(settings)
    # Workers (and this process, when there is one) rebuild the settings from the environment.
    os.environ.update(settings_to_env(settings))
    workers = settings.workers or os.cpu_count() or 1

    config = Config()
    config.bind = [settings.listen]
    config.application_path = "registry.asgi:app()"
    config.worker_class = "uvloop"
    config.workers = 0 if workers == 1 else workers
    config.graceful_timeout = settings.shutdown_timeout
    config.loglevel = settings.log_level.upper()
    log.info(
        "registry listening on http://%s with %d worker(s), data in %s",
        settings.listen,
        workers,
        settings.data_dir,
    )
    return run(config)
