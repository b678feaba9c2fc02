"""Everything authentication and authorization need at run time, built once per process from settings:
the rules, the login checker, and in token mode the signing key and the token verifiers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.auth import TOKEN_PATH
from registry.auth.access import RulesFile
from registry.auth.identity import Identity
from registry.auth.logins import Logins
from registry.auth.origin import client_address, public_base_url
from registry.auth.passwords import Htpasswd
from registry.auth.ratelimit import FailureLimiter
from registry.auth.scopes import (
    ALL,
    CATALOG,
    PULL,
    REGISTRY,
    REPOSITORY,
    REPOSITORY_ACTIONS,
    ResourceScope,
)
from registry.auth.tokens import REFRESH, SigningKey, TrustedIssuer, Verifier, claims_for, load_public_keys
from registry.config import Settings
from registry.index import UserDirectory
from registry.types import is_valid_name

log = logging.getLogger("registry.auth")
# Refresh tokens (what `docker login` keeps) are revoked by a password change or removal, not by age;
# the expiry only bounds how long a leaked one is worth something.
REFRESH_LIFETIME = 90 * 24 * 3600
MIN_TOKEN_LIFETIME = 60  # the token spec: never less than 60 seconds to live


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass
class Authority:
    settings: Settings
    rules: RulesFile
    logins: Logins
    trusted_proxies: frozenset[str]
    signer: SigningKey | None = None
    verifier: Verifier | None = None
    refresh_verifier: Verifier | None = None
    # Told each token request's outcome (`issued` or a refusal's reason); set when metrics are on.
    count_token: Callable[[str], None] | None = None

    @classmethod
    def build(cls, settings: Settings, users: UserDirectory) -> Authority | None:
        if settings.auth.kind == "none":
            return None
        htpasswd = Htpasswd(Path(settings.auth.htpasswd.path)) if settings.auth.htpasswd.path else None
        if htpasswd is not None:
            htpasswd.lookup("")  # an unreadable file should stop the start, not the first login
        logins = Logins(
            users,
            htpasswd,
            FailureLimiter(settings.limits.login_failures_per_user, settings.limits.login_failure_window),
            FailureLimiter(settings.limits.login_failures_per_address, settings.limits.login_failure_window),
        )
        authority = cls(settings, RulesFile(settings.rules.path), logins, settings.trusted_proxy_addresses)
        if settings.auth.kind == "token":
            authority._load_keys()
        return authority

    def _load_keys(self) -> None:
        settings = self.settings
        if settings.tokens.lifetime < MIN_TOKEN_LIFETIME:
            raise ValueError(f"setting 'tokens.lifetime': at least {MIN_TOKEN_LIFETIME} seconds")
        self.signer, created = SigningKey.load_or_create(settings.token_key_path)
        if created:
            log.warning(
                "generated a token signing key in %s (kid %s)", settings.token_key_path, self.signer.kid
            )
        own = TrustedIssuer(frozenset({settings.auth.token.issuer}), {self.signer.kid: self.signer.public})
        issuers = [own]
        external = frozenset(_csv(settings.tokens.trusted_issuers))
        paths = _csv(settings.tokens.trusted_keys)
        if bool(external) != bool(paths):
            raise ValueError("settings 'tokens.trusted_issuers' and 'tokens.trusted_keys' go together")
        if external:
            keys = {kid: key for path in paths for kid, key in load_public_keys(Path(path)).items()}
            issuers.append(TrustedIssuer(external, keys))
        bundle = settings.auth.token.rootcertbundle
        if bundle:  # Distribution's: tokens issued as auth.token.issuer, signed by these certificates
            keys = load_public_keys(Path(bundle))
            issuers.append(TrustedIssuer(frozenset({settings.auth.token.issuer}), keys))
        self.verifier = Verifier(issuers, settings.auth.token.service)
        self.refresh_verifier = Verifier([own], settings.auth.token.service)

    @property
    def mode(self) -> str:
        return self.settings.auth.kind

    @property
    def basic_realm(self) -> str:
        return self.settings.auth.htpasswd.realm or self.settings.auth.token.service

    def is_own(self, claims: dict[str, Any]) -> bool:
        return claims.get("iss") == self.settings.auth.token.issuer

    # Rules

    def actions(self, identity: Identity, repository: str) -> frozenset[str]:
        return self.rules.current().actions(identity, repository)

    def may_list_catalog(self, identity: Identity) -> bool:
        return self.rules.current().may_list_catalog(identity)

    def lists(self, identity: Identity, repository: str) -> bool:
        return PULL in self.actions(identity, repository)

    def granted(self, identity: Identity, wanted: list[ResourceScope]) -> list[ResourceScope]:
        """What a token for these requested scopes holds: for each, the requested actions this caller
        has (the token spec's intersection); resources the caller gets nothing on are left out."""
        granted = []
        for scope in wanted:
            actions: frozenset[str] = frozenset()
            if scope.type == REPOSITORY and is_valid_name(scope.name):
                requested = REPOSITORY_ACTIONS if ALL in scope.actions else scope.actions
                actions = requested & self.actions(identity, scope.name)
            elif scope.type == REGISTRY and scope.name == CATALOG and ALL in scope.actions:
                actions = frozenset({ALL}) if self.may_list_catalog(identity) else frozenset()
            if actions:
                granted.append(ResourceScope(scope.type, scope.name, actions))
        return granted

    # Tokens

    def issue(self, identity: Identity, scopes: list[ResourceScope]) -> tuple[str, int, float]:
        """A signed access token; with its lifetime and issue time."""
        assert self.signer is not None
        now = time.time()
        claims = claims_for(
            self.settings.auth.token.issuer,
            identity.name,
            self.settings.auth.token.service,
            self.settings.tokens.lifetime,
            now,
            access=[scope.claim() for scope in scopes],
        )
        return self.signer.sign(claims), self.settings.tokens.lifetime, now

    def refresh_token(self, identity: Identity, stamp: str) -> str:
        assert self.signer is not None
        claims = claims_for(
            self.settings.auth.token.issuer,
            identity.name,
            self.settings.auth.token.service,
            REFRESH_LIFETIME,
            token_use=REFRESH,
            stamp=stamp,
        )
        return self.signer.sign(claims)

    # The request's context

    def realm(self, scope: Any) -> str:
        return self.settings.auth.token.realm or public_base_url(scope, self.settings.http.host) + TOKEN_PATH

    def address(self, scope: Any) -> str:
        return client_address(scope, self.trusted_proxies)
