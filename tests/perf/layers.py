"""Where a small request's CPU goes in our own code: the same request entering the ASGI stack at each
layer, in-process, no server and no socket. A script, not a pytest test:

    python tests/perf/layers.py [--requests N] [--repeats N] [--no-access-log] [--no-metrics]

It makes a registry in a temporary folder (default settings: SQLite, filesystem, metrics and access
log on, the access log sent to /dev/null), pushes one small image through the app itself, then times
manifest GET, manifest HEAD and blob HEAD entering at the observe layer, at each layer inside it,
and at the handler alone (route match and handler); at the observe layer both as a request answered
from memory (a kept answer) and as one that goes the whole way. Each figure is the best of `--repeats` runs of
`--requests` requests, in microseconds per request; the difference between two rows is what the
outer layer costs. Under granian, add about 21 us per request for the server's own handling (a no-op
ASGI app answers about 46,000 requests a second on a 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: the repository's tests package

from tests.support.asgi import http_scope  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
Message = dict[str, Any]
App = Callable[[dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Any]


def _scope(method: str, path: str, query: str = "", headers: tuple[tuple[bytes, bytes], ...] = ()) -> dict:
    return http_scope(
        method, path, query, [(b"host", b"127.0.0.1:5000"), (b"user-agent", b"layers"), *headers]
    )


class _Exchange:
    """One request's receive and send: the body given once, the status kept."""

    def __init__(self, body: bytes = b"") -> None:
        self.body, self.given, self.status = body, False, 0

    async def receive(self) -> Message:
        if self.given:
            await asyncio.Event().wait()  # as a server does: nothing more until the client goes
        self.given = True
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def _call(app: App, scope: dict, body: bytes = b"") -> int:
    exchange = _Exchange(body)
    await app(scope, exchange.receive, exchange.send)
    return exchange.status


async def _push_image(app: App, repository: str) -> str:
    """A config, a 4 KiB layer and a manifest tagged `latest`, pushed through the app; the layer's digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    layer = os.urandom(4096)
    descriptors = []
    for blob, media_type in ((config, "application/vnd.oci.image.config.v1+json"), (layer, "layer")):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        length = (b"content-length", str(len(blob)).encode())
        status = await _call(
            app, _scope("POST", f"/v2/{repository}/blobs/uploads/", f"digest={digest}", (length,)), blob
        )
        assert status == 201, f"blob push answered {status}"
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(blob)})
    config_descriptor, layer_descriptor = descriptors
    layer_descriptor["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor,
            "layers": [layer_descriptor],
        }
    ).encode()
    headers = ((b"content-type", OCI_MANIFEST.encode()), (b"content-length", str(len(manifest)).encode()))
    status = await _call(app, _scope("PUT", f"/v2/{repository}/manifests/latest", headers=headers), manifest)
    assert status == 201, f"manifest push answered {status}"
    return layer_descriptor["digest"]


def _entry_points(app: Any) -> list[tuple[str, App]]:
    """Each layer of the stack, outermost first, then the gate's handler call alone. The observe layer
    twice: giving the kept answer (registry/api/kept.py), and as it is for a request that has none."""
    from registry.api.routes import ROUTES
    from registry.config import load_settings
    from registry.observe.layer import Observe

    whole_way = Observe(app.app, load_settings(), ROUTES, kept=None)
    whole_way.access_log, whole_way.metrics = app.access_log, app.metrics
    layers: list[tuple[str, App]] = [("Observe, kept answer", app), ("Observe, whole way", whole_way)]
    layer = app.app
    while not hasattr(layer, "middleware_stack"):  # observe, body guard, header limit
        layers.append((type(layer).__name__, layer))
        layer = layer.app
    starlette = layer
    layers.append(("Starlette", starlette))
    inner = starlette.middleware_stack or starlette.build_middleware_stack()
    while type(inner).__name__ != "Gate":
        layers.append((type(inner).__name__, inner))
        inner = inner.app
    gate = inner
    layers.append(("Gate", gate))

    async def handler_only(scope: dict, receive: Any, send: Any) -> None:
        gate._match(scope)
        await gate._handle(scope, receive, send)

    layers.append(("route match + handler", handler_only))
    return layers


async def _measure(app: Any, requests: int, repeats: int) -> None:
    lifespan_messages: asyncio.Queue[Message] = asyncio.Queue()
    await lifespan_messages.put({"type": "lifespan.startup"})
    started: asyncio.Queue[Message] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan_messages.get, started.put)
    )
    assert (await started.get())["type"] == "lifespan.startup.complete"
    repository = "layers/image"
    layer = await _push_image(app, repository)
    accept = ((b"accept", OCI_MANIFEST.encode()),)
    cases = {
        "manifest GET": ("GET", f"/v2/{repository}/manifests/latest", accept),
        "manifest HEAD": ("HEAD", f"/v2/{repository}/manifests/latest", accept),
        "blob HEAD": ("HEAD", f"/v2/{repository}/blobs/{layer}", ()),
    }
    await _call(app, _scope("GET", "/v2/"))  # builds starlette's middleware stack
    points = _entry_points(app)
    starlette_app = next(entry for name, entry in points if name == "Starlette")
    print(f"{'entering at':<24}" + "".join(f"{case:>16}" for case in cases))
    for name, entry in points:
        row = []
        for method, path, headers in cases.values():

            async def once(
                entry: App = entry, method: str = method, path: str = path, headers: Any = headers
            ) -> int:
                scope = _scope(method, path, headers=headers)
                scope["app"] = starlette_app  # what starlette sets for the layers inside it
                return await _call(entry, scope)

            for _ in range(200):
                assert await once() == 200, f"{name}: {method} {path}"
            best = float("inf")
            for _ in range(repeats):
                began = time.perf_counter()
                for _ in range(requests):
                    await once()
                best = min(best, (time.perf_counter() - began) / requests)
            row.append(f"{best * 1e6:13.1f} us")
        print(f"{name:<24}" + "".join(f"{cell:>16}" for cell in row))
    await lifespan_messages.put({"type": "lifespan.shutdown"})
    await lifespan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-access-log", action="store_true", help="log.accesslog.disabled: true")
    parser.add_argument("--no-metrics", action="store_true", help="http.debug.prometheus.enabled: false")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="registry-layers-") as data:
        for name in [name for name in os.environ if name.startswith("REGISTRY_")]:
            del os.environ[name]
        os.environ["REGISTRY_DATA_DIR"] = data
        if args.no_access_log:
            os.environ["REGISTRY_LOG_ACCESSLOG_DISABLED"] = "true"
        if args.no_metrics:
            os.environ["REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED"] = "false"
        subprocess.run([sys.executable, "-m", "registry", "migrate", "--create"], cwd=ROOT, check=True)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            import uvloop

            from registry.asgi import app as build

            uvloop.run(_measure(build(), args.requests, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
