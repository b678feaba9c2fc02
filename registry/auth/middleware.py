"""The access check of every `/v2/` request: whether the caller's token or password grants what the
matched route declares it needs (`registry.auth.needs`), and the spec's answer when not.

Not a layer of its own: the API's gate, which matches the route once, calls `AccessCheck.serve` with
the need. Answers, token mode: no or invalid token, or one lacking scope the caller could get: 401 with
a Bearer challenge (realm, service, scope, and `error` as RFC 6750 says), so clients fetch a fitting
token and retry. A signed-in caller whose rules refuse the action: 403 DENIED. Basic mode: 401 with a
Basic challenge without valid credentials, 403 DENIED when the user may not. Too many failed logins: 429.
"""

from __future__ import annotations

import base64
import binascii
import logging

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.auth.audit import audit
from registry.auth.authority import Authority
from registry.auth.identity import ANONYMOUS, GRANT_KEY, Grant, Identity
from registry.auth.logins import LoginThrottled
from registry.auth.needs import Need
from registry.auth.scopes import ALL, CATALOG, REGISTRY, REPOSITORY, access_from_claim
from registry.auth.tokens import TokenError
from registry.errors import ErrorCode, RegistryError, error_response, too_many_logins

log = logging.getLogger("registry.auth")


def _authorization(scope: Scope, kind: str) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == kind:
                return credentials.strip()
    return None


def _basic_credentials(scope: Scope) -> tuple[str, str] | None:
    encoded = _authorization(scope, "basic")
    if encoded is None:
        return None
    try:
        name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    return name, password


def _detail(need: Need) -> list[dict[str, str]]:
    """The error detail Distribution sends with a challenge: the access that was missing."""
    return [
        {"Type": scope.type, "Name": scope.name, "Action": action}
        for scope in need.required()
        for action in sorted(scope.actions)
    ]


class AccessCheck:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    async def serve(self, app: ASGIApp, need: Need, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with `app` if the caller has what it needs, else answer the refusal."""
        address = self.authority.address(scope)
        if self.authority.mode == "token":
            outcome = await self._by_token(scope, need, address)
        else:
            outcome = await self._by_password(scope, need, address)
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        scope["state"] = {**scope.get("state", {}), GRANT_KEY: outcome}
        if need.event is None:
            await app(scope, receive, send)
            return
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            event, target = need.event
            audit(
                event,
                outcome.identity.name,
                address,
                repository=need.repository,
                target=target,
                status=status,
            )

    # Token mode

    async def _by_token(self, scope: Scope, need: Need, address: str) -> Grant | Response:
        token = _authorization(scope, "bearer")
        if not token:
            return self._challenge(scope, need)
        assert self.authority.verifier is not None
        try:
            claims = self.authority.verifier.verify(token)
            access = access_from_claim(claims.get("access"))
        except (TokenError, ValueError) as error:
            log.info("refused a token from %s: %s", address, error)
            return self._challenge(scope, need, "invalid_token")
        identity = Identity(claims.get("sub", ""))
        granted_catalog = ALL in access.get((REGISTRY, CATALOG), frozenset())
        missing = (need.catalog and not granted_catalog) or (
            need.repository is not None
            and not need.actions <= access.get((REPOSITORY, need.repository), frozenset())
        )
        if (missing or need.catalog or need.by_rules) and not identity.anonymous:
            identity = await self._with_groups(identity)
        if missing:
            # Our own token service would not grant more to this user either: say so rather than have
            # the client fetch another token in vain. Others' tokens get the challenge, as in Distribution.
            if (
                not identity.anonymous
                and self.authority.is_own(claims)
                and not self._rules_allow(identity, need)
            ):
                return self._denied(scope, need, identity, address)
            return self._challenge(scope, need, "insufficient_scope")

        def allows(repository: str, action: str) -> bool:
            return action in access.get((REPOSITORY, repository), frozenset())

        return Grant(identity, allows, lambda name: self.authority.lists(identity, name))

    async def _with_groups(self, identity: Identity) -> Identity:
        account = await self.authority.logins.account(identity.name)
        return account[0] if account is not None else identity

    def _bearer_challenge(self, scope: Scope, need: Need, error: str | None) -> str:
        service = self.authority.settings.auth.token.service
        params = f'Bearer realm="{self.authority.realm(scope)}",service="{service}"'
        if need.challenge_scope():
            params += f',scope="{need.challenge_scope()}"'
        return params + (f',error="{error}"' if error else "")

    def _challenge(self, scope: Scope, need: Need, error: str | None = None) -> Response:
        return self._unauthorized(need, self._bearer_challenge(scope, need, error))

    # Basic mode

    async def _by_password(self, scope: Scope, need: Need, address: str) -> Grant | Response:
        credentials = _basic_credentials(scope)
        identity = ANONYMOUS
        if credentials is not None:
            name, password = credentials
            try:
                found = await self.authority.logins.login(name, password, address)
            except LoginThrottled as throttled:
                return too_many_logins(throttled.retry_after)
            if found is None:
                return self._unauthorized(need, self._basic_challenge())
            identity = found
            if need.repository is None and not need.catalog:
                audit("login", name, address, outcome="ok")
        known_only = need.repository is None and not need.catalog
        if identity.anonymous and (known_only or not self._rules_allow(identity, need)):
            return self._unauthorized(need, self._basic_challenge())
        if not self._rules_allow(identity, need):
            return self._denied(scope, need, identity, address)

        def allows(repository: str, action: str) -> bool:
            return action in self.authority.actions(identity, repository)

        return Grant(identity, allows, lambda name: self.authority.lists(identity, name))

    def _basic_challenge(self) -> str:
        return f'Basic realm="{self.authority.basic_realm}",charset="UTF-8"'

    # Shared

    def _rules_allow(self, identity: Identity, need: Need) -> bool:
        if need.catalog and not self.authority.may_list_catalog(identity):
            return False
        return need.repository is None or need.actions <= self.authority.actions(identity, need.repository)

    def _unauthorized(self, need: Need, challenge: str) -> Response:
        error = RegistryError(ErrorCode.UNAUTHORIZED, _detail(need), headers={"WWW-Authenticate": challenge})
        return error_response(error)

    def _denied(self, scope: Scope, need: Need, identity: Identity, address: str) -> Response:
        audit(
            "denied",
            identity.name,
            address,
            repository=need.repository,
            actions=",".join(sorted(need.actions)),
        )
        headers = {}
        if self.authority.mode == "token":
            headers["WWW-Authenticate"] = self._bearer_challenge(scope, need, "insufficient_scope")
        return error_response(RegistryError(ErrorCode.DENIED, _detail(need), headers=headers))
