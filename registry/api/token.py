"""The built-in token service at `/auth/token`, as Distribution's token spec describes it.

- `GET` (token.md): Basic credentials (none: an anonymous token), `service`, repeated `scope`,
  `offline_token=true` for a refresh token; `account` and `client_id` are ignored, as the identity comes
  from the credentials alone.
- `POST` (oauth.md): a form with `grant_type=password` (`username`, `password`, `access_type=offline` for a
  refresh token) or `grant_type=refresh_token` (`refresh_token`), `service`, and one space-separated
  `scope`.

Unknown credentials get 401; a caller short of some requested access is not an error: the token holds
the intersection of what was asked and what the rules grant, and the registry refuses the rest.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from registry.api.common import services
from registry.auth.audit import audit
from registry.auth.authority import Authority
from registry.auth.identity import ANONYMOUS, Identity
from registry.auth.logins import LoginThrottled
from registry.auth.scopes import ResourceScope, parse_scopes
from registry.auth.tokens import REFRESH, TokenError
from registry.errors import ErrorCode, RegistryError, error_response, too_many_logins

MAX_FORM = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _authority(request: Request) -> Authority:
    authority = services(request).auth
    if authority is None or authority.mode != "token":
        raise RegistryError(ErrorCode.UNSUPPORTED, message="token authentication is not enabled", status=404)
    return authority


def _bad_request(message: str) -> RegistryError:
    return RegistryError(ErrorCode.UNSUPPORTED, message=message, status=400)


def _unauthorized(authority: Authority, message: str) -> _Refused:
    challenge = f'Basic realm="{authority.basic_realm}",charset="UTF-8"'
    error = RegistryError(ErrorCode.UNAUTHORIZED, message=message, headers={"WWW-Authenticate": challenge})
    return _Refused(error_response(error))


def _requested(authority: Authority, service: str | None, scopes: list[str]) -> list[ResourceScope]:
    if service is not None and service != authority.settings.auth.token.service:
        raise _bad_request(
            f"this token service issues tokens for {authority.settings.auth.token.service!r} only"
        )
    try:
        return parse_scopes(scopes)
    except ValueError as error:
        raise _bad_request(str(error)) from None


async def _login(authority: Authority, name: str, password: str, address: str) -> Identity:
    try:
        identity = await authority.logins.login(name, password, address)
    except LoginThrottled as throttled:
        raise _Refused(too_many_logins(throttled.retry_after)) from None
    if identity is None:
        raise _unauthorized(authority, "invalid user name or password")
    return identity


async def _refresh_token(authority: Authority, identity: Identity) -> str:
    account = await authority.logins.account(identity.name)
    if account is None:
        raise _unauthorized(authority, "unknown user")
    return authority.refresh_token(identity, account[1])


def _issue(
    authority: Authority, identity: Identity, wanted: list[ResourceScope], address: str, how: str
) -> tuple[dict[str, object], list[ResourceScope]]:
    granted = authority.granted(identity, wanted)
    token, lifetime, issued = authority.issue(identity, granted)
    if not identity.anonymous:
        audit(
            "login", identity.name, address, outcome="ok", via=how, scope=" ".join(map(str, granted)) or None
        )
    body: dict[str, object] = {
        "token": token,
        "access_token": token,
        "expires_in": lifetime,
        "issued_at": datetime.fromtimestamp(issued, UTC).isoformat().replace("+00:00", "Z"),
    }
    return body, granted


# What a token request that is not answered 200 counts as, by status.
_REFUSALS = {400: "bad_request", 401: "credentials", 429: "throttled"}


def _counted(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Tell the authority (metrics) whether a token was issued or why it was refused."""

    @functools.wraps(handler)
    async def counting(request: Request) -> Response:
        authority = _authority(request)
        try:
            response = await handler(request)
        except RegistryError as error:
            if authority.count_token is not None:
                authority.count_token(_REFUSALS.get(error.status, "bad_request"))
            raise
        if authority.count_token is not None:
            status = response.status_code
            authority.count_token("issued" if status == 200 else _REFUSALS.get(status, "bad_request"))
        return response

    return counting


@_counted
async def get_token(request: Request) -> Response:
    authority = _authority(request)
    address = authority.address(request.scope)
    params = request.query_params
    try:
        wanted = _requested(authority, params.get("service"), params.getlist("scope"))
        identity = ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise _unauthorized(authority, "malformed Basic credentials") from None
            identity = await _login(authority, name, password, address)
        body, _ = _issue(authority, identity, wanted, address, "get")
        if params.get("offline_token", "").lower() == "true" and not identity.anonymous:
            body["refresh_token"] = await _refresh_token(authority, identity)
    except _Refused as refused:
        return refused.response
    return JSONResponse(body, headers=_NO_STORE)


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise _bad_request("expected an application/x-www-form-urlencoded body")
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FORM:
            raise _bad_request("form too large")
    return dict(parse_qsl(data.decode(errors="replace"), keep_blank_values=True))


@_counted
async def post_token(request: Request) -> Response:
    authority = _authority(request)
    address = authority.address(request.scope)
    form = await _form(request)
    try:
        wanted = _requested(authority, form.get("service"), [form.get("scope", "")])
        grant_type = form.get("grant_type")
        if grant_type == "password":
            identity = await _login(authority, form.get("username", ""), form.get("password", ""), address)
            refresh = (
                await _refresh_token(authority, identity) if form.get("access_type") == "offline" else None
            )
        elif grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            identity = await _from_refresh_token(authority, refresh, address)
        else:
            raise _bad_request(f"unsupported grant_type {grant_type!r}")
        body, granted = _issue(authority, identity, wanted, address, grant_type)
    except _Refused as refused:
        return refused.response
    body["scope"] = " ".join(map(str, granted))
    if refresh is not None:
        body["refresh_token"] = refresh
    return JSONResponse(body, headers=_NO_STORE)


async def _from_refresh_token(authority: Authority, token: str, address: str) -> Identity:
    """The user a refresh token was issued to, if it is ours, for this service, and the user still has
    the password it was issued under."""
    assert authority.refresh_verifier is not None
    try:
        claims = authority.refresh_verifier.verify(token, use=REFRESH)
    except TokenError as error:
        audit("login", "", address, outcome="failed", via="refresh_token", reason=str(error))
        raise _unauthorized(authority, "invalid refresh token") from None
    account = await authority.logins.account(claims.get("sub", ""))
    if account is None or account[1] != claims.get("stamp"):
        audit(
            "login", claims.get("sub", ""), address, outcome="failed", via="refresh_token", reason="revoked"
        )
        raise _unauthorized(authority, "the refresh token was revoked")
    return account[0]
