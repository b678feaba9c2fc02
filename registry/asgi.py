"""ASGI entry point for servers that import the app by path (hypercorn workers, uvicorn, granian).

`app()` is a factory: each worker process builds its own app from the `REGISTRY_*` environment that
`registry serve` (or the operator) set, so every worker runs with the same settings.

The connection's limits go around everything, starlette's own error middleware included, because what
they protect is the server's connection, not any one route; the body guard outermost, so it also sees
the header limit's answers. Only the observe layer (request id, access log, request metrics) is further
out, so that it logs and counts what the client finally got, the limits' answers included; it also
gives kept answers to pulls (registry/api/kept.py), which the layers inside need not see again.
"""

from starlette.types import ASGIApp

from registry.api.routes import ROUTES
from registry.app import create_app
from registry.config import load_settings
from registry.limits.body import BodyGuard
from registry.limits.headers import HeaderLimit
from registry.logs import configure as configure_logging
from registry.observe.layer import Observe
from registry.serving.supervision import die_with_supervisor


def app() -> ASGIApp:
    die_with_supervisor()
    settings = load_settings()
    configure_logging(settings.log.level, settings.log.formatter)
    registry = create_app(settings)
    limited = HeaderLimit(registry, settings.limits.max_header_size)
    guarded = BodyGuard(limited, settings.limits.body_read_timeout)
    return Observe(guarded, settings, ROUTES, registry.state.registry.kept)
