"""Applies the Alembic migrations in `migrations/` (installed as `registry.migrations`)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("registry.migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the index schema to the newest revision. Safe to run on every start: a no-op when current."""
    command.upgrade(alembic_config(url), "head")
