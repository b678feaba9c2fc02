"""Registry authentication as an httpx `Auth`: Docker's token flow and HTTP basic, driven by challenges.

The flow is a generator, so the same code serves the sync and async clients and never does I/O itself:
send the request; on `401` with `WWW-Authenticate: Bearer realm=...,service=...,scope=...` fetch a token
from the realm (with basic credentials when there are some, anonymously otherwise) and resend; on a
`Basic` challenge resend with basic credentials. Tokens are remembered per repository and access, so only
the first request of each kind pays the extra round trips, even with many downloads in flight.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncGenerator, Generator
from typing import Final

import httpx

from registry.client.credentials import Credentials
from registry.client.errors import AuthenticationError

_PARAM_RE: Final = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_REPOSITORY_PATH_RE: Final = re.compile(r"/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")
_READ_METHODS: Final = frozenset({"GET", "HEAD"})
_TOKEN_REQUEST: Final = "registry.token_request"  # marks our token requests: their bodies are read
CLIENT_ID: Final = "registry-client"  # who asks, for the token service's logs (Docker sends "docker")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """(scheme in lower case, parameters) of a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match[1].lower(): match[2] if match[2] is not None else match[3] for match in _PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _access_key(request: httpx.Request) -> str:
    """What a token is good for, as far as this request can tell: its repository and read or write."""
    match = _REPOSITORY_PATH_RE.match(request.url.path)
    repository = match.group(1) if match else ""
    return f"{repository}:{'pull' if request.method in _READ_METHODS else 'push'}"


class RegistryAuth(httpx.Auth):
    """Reads the body of token responses only: `requires_response_body` would make httpx read every
    response before the caller sees it, and a streamed blob download would find its body consumed.
    """

    def __init__(self, credentials: Credentials | None = None) -> None:
        self.credentials = credentials
        self._basic = (
            basic_header(credentials.username, credentials.password)
            if credentials and credentials.password
            else None
        )
        self._tokens: dict[str, str] = {}
        self._basic_accepted = False

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = _access_key(request)
        if self._basic_accepted and self._basic:
            request.headers["Authorization"] = self._basic
        elif key in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self._basic:
            self._basic_accepted = True
            request.headers["Authorization"] = self._basic
            yield request
        elif scheme == "bearer" and "realm" in params:
            token_response = yield self._token_request(request, params)
            self._tokens[key] = self._token_from(token_response)
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
            yield request

    def _token_request(self, request: httpx.Request, challenge: dict[str, str]) -> httpx.Request:
        scopes = challenge.get("scope", "").split()
        # A cross-repository mount reads the source repository too; registries that leave it out of the
        # challenge would otherwise answer the mount with an upload session instead.
        if source := request.url.params.get("from"):
            scopes.append(f"repository:{source}:pull")
        scopes = list(dict.fromkeys(scopes))
        service = [("service", challenge["service"])] if "service" in challenge else []
        marked = {_TOKEN_REQUEST: True}
        if self.credentials and self.credentials.identity_token:
            # Distribution's OAuth2 flow, as Docker uses it with the refresh token `docker login` stored.
            form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", self.credentials.identity_token),
                ("client_id", CLIENT_ID),
                *service,
                *([("scope", " ".join(scopes))] if scopes else []),
            ]
            return httpx.Request("POST", challenge["realm"], data=dict(form), extensions=marked)
        params = [*service, *(("scope", scope) for scope in scopes)]
        headers = {"Authorization": self._basic} if self._basic else {}
        return httpx.Request("GET", challenge["realm"], params=params, headers=headers, extensions=marked)

    def _token_from(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            if self.credentials is None:
                hint = " (not logged in: see `registry login`)"
            elif self.credentials.identity_token:
                hint = " (the identity token `docker login` stored was refused: log in again)"
            else:
                hint = ""
            raise AuthenticationError(
                f"token request to {response.request.url.copy_with(query=None)} failed: "
                f"HTTP {response.status_code} {response.text[:200]}{hint}"
            )
        try:
            body = response.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError) as error:
            raise AuthenticationError(
                f"token service at {response.request.url.host} sent no token"
            ) from error

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            if response.request.extensions.get(_TOKEN_REQUEST):
                response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            if response.request.extensions.get(_TOKEN_REQUEST):
                await response.aread()
            try:
                request = flow.send(response)
            except StopIteration:
                return
