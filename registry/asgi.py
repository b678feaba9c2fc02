"""ASGI entry point for servers that import the app by path (hypercorn workers, uvicorn, granian).

`app()` is a factory: each worker process builds its own app from the `REGISTRY_*` environment that
`registry serve` (or the operator) set, so every worker runs with the same settings.
"""

from starlette.applications import Starlette

from registry.app import create_app
from registry.config import load_settings
from registry.logs import configure as configure_logging


def app() -> Starlette:
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
