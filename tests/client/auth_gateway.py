"""A small authenticating front for a real registry, served by hypercorn on loopback inside a test.

It answers `/v2/...` with `401` and a challenge (Docker's Bearer token flow, or HTTP Basic), issues tokens
at `/token` for good Basic credentials, checks each token's scopes against the repository and action of
the request (pull for GET/HEAD, push otherwise; a mount also needs pull on its source), and forwards what
it lets through to the registry behind it. Just enough of a token service to drive the client's auth
flow for real, with TLS when given a certificate.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.tools import free_port

USERS = {"alice": "wonderland"}
SERVICE = "test-registry"
_REPOSITORY = re.compile(r"/v2/(.+?)/(?:manifests|blobs|tags)/")
_FORWARDED_REQUEST = ("accept", "content-type", "content-range", "range")
_FORWARDED_RESPONSE = (
    "content-type", "docker-content-digest", "location", "range", "content-range", "docker-upload-uuid",
)  # fmt: skip


@dataclass
class Gateway:
    backend: str | None = None  # base URL of the registry behind, None for a /v2/ that only authenticates
    mode: str = "bearer"  # or "basic"
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> "repository:NAME:ACTION" granted
    token_requests: list[list[str]] = field(default_factory=list)  # the scopes each token request asked
    challenges: int = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self.token),
                Route(
                    "/v2/{path:path}",
                    self.registry,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                ),
            ]
        )

    def _user(self, request: Request) -> str | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user if USERS.get(user) == password else None

    async def token(self, request: Request) -> Response:
        scopes = request.query_params.getlist("scope")
        self.token_requests.append(scopes)
        if request.query_params.get("service") != SERVICE or self._user(request) is None:
            return JSONResponse({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}, 401)
        granted = set()
        for scope in scopes:
            kind, name, actions = scope.rsplit(":", 2)
            granted.update(f"{kind}:{name}:{action}" for action in actions.split(","))
        token = secrets.token_hex(8)
        self.tokens[token] = granted
        return JSONResponse({"token": token, "expires_in": 300})

    def _needed(self, request: Request) -> tuple[str | None, str]:
        match = _REPOSITORY.match(request.url.path)
        return (match.group(1) if match else None), "pull" if request.method in ("GET", "HEAD") else "push"

    def _challenge(self, request: Request, repository: str | None, action: str) -> Response:
        self.challenges += 1
        if self.mode == "basic":
            header = 'Basic realm="test"'
        else:
            header = f'Bearer realm="{request.base_url}token",service="{SERVICE}"'
            if repository:
                header += f',scope="repository:{repository}:{"pull" if action == "pull" else "pull,push"}"'
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]}
        return JSONResponse(body, 401, headers={"WWW-Authenticate": header})

    async def registry(self, request: Request) -> Response:
        repository, action = self._needed(request)
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if self.mode == "basic":
            allowed = self._user(request) is not None
            granted: set[str] = set()
        else:
            granted = self.tokens.get(credential, set()) if scheme.lower() == "bearer" else set()
            allowed = scheme.lower() == "bearer" and credential in self.tokens
            if repository:
                allowed = allowed and f"repository:{repository}:{action}" in granted
        if not allowed:
            return self._challenge(request, repository, action)
        if self.backend is None:
            return JSONResponse({})
        params = dict(request.query_params)
        source = params.get("from")
        if source and self.mode == "bearer" and f"repository:{source}:pull" not in granted:
            params.pop("mount"), params.pop("from")  # no right to read the source: no mount, a plain upload
        async with httpx.AsyncClient(base_url=self.backend) as backend:
            answer = await backend.request(
                request.method,
                request.url.path,
                params=params,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_REQUEST},
            )
        headers = {k: v for k, v in answer.headers.items() if k.lower() in _FORWARDED_RESPONSE}
        return Response(answer.content, answer.status_code, headers=headers)


class Served:
    """An ASGI app served by hypercorn on a free loopback port, in a thread of its own."""

    def __init__(self, gateway: Gateway, certificate: tuple[Path, Path] | None = None) -> None:
        self.gateway = gateway
        self.port = free_port()
        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = config.errorlog = None
        if certificate:
            config.certfile, config.keyfile = (str(path) for path in certificate)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the auth gateway did not start") from None
                time.sleep(0.02)

    def _run(self, config: Config) -> None:
        app = self.gateway.app()
        self._loop.run_until_complete(serve(app, config, shutdown_trigger=self._stop.wait))  # type: ignore[arg-type]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
