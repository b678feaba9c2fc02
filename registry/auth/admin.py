"""Who may use the operator's routes outside `/v2/` (`/admin/...`): members of the group `admin`.

The caller proves who they are with Basic credentials (the index's users, then the htpasswd file) or,
in token mode, with a token this registry or a trusted issuer signed; their groups come from the index,
as for the access rules. With `auth: none` everyone may, as everyone may push and delete then: that
mode serves only loopback unless the operator allowed anonymous remote callers.
"""

from __future__ import annotations

from starlette.requests import Request

from registry.auth.authority import Authority
from registry.auth.identity import Identity
from registry.auth.logins import LoginThrottled
from registry.auth.middleware import _authorization, _basic_credentials
from registry.auth.tokens import TokenError
from registry.errors import ErrorCode, RegistryError

ADMIN_GROUP = "admin"


async def require_admin(authority: Authority, request: Request) -> None:
    """Return if the caller is an administrator; raise the spec's 401 (with a Basic challenge) for no or
    wrong credentials, 403 DENIED for a user outside the group, 429 after too many failed logins."""
    identity = await _caller(authority, request)
    if identity is None:
        challenge = f'Basic realm="{authority.settings.auth.token.service}",charset="UTF-8"'
        raise RegistryError(
            ErrorCode.UNAUTHORIZED,
            {"need": f"a member of group {ADMIN_GROUP}"},
            headers={"WWW-Authenticate": challenge},
        )
    if ADMIN_GROUP not in identity.groups:
        raise RegistryError(
            ErrorCode.DENIED, {"user": identity.name, "need": f"a member of group {ADMIN_GROUP}"}
        )


async def _caller(authority: Authority, request: Request) -> Identity | None:
    scope = request.scope
    credentials = _basic_credentials(scope)
    if credentials is not None:
        try:
            return await authority.logins.login(*credentials, authority.address(scope))
        except LoginThrottled as throttled:
            seconds = str(max(1, round(throttled.retry_after)))
            raise RegistryError(
                ErrorCode.TOOMANYREQUESTS, {"retryAfter": seconds}, headers={"Retry-After": seconds}
            ) from None
    token = _authorization(scope, "bearer")
    if token and authority.verifier is not None:
        try:
            name = authority.verifier.verify(token).get("sub", "")
        except (TokenError, ValueError):
            return None
        account = await authority.logins.account(name) if name else None
        return account[0] if account is not None else None
    return None
