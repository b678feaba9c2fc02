"""Token authentication against a real registry over HTTPS: the challenge, the token service (GET and the
OAuth2 POST, refresh tokens), the rules as tokens carry them, and every escalation we could think of."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from registry.auth.tokens import SigningKey, b64url, claims_for
from tests.auth.conftest import (
    PASSWORDS,
    RULES,
    basic,
    bearer,
    claims,
    cli,
    data_args,
    errors,
    get_token,
    https,
    ssl_context,
    start,
    tls_env,
    token,
)
from tests.support.oci import image_manifest, push_blob, put_manifest, sha256
from tests.support.server import RegistryProcess

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
UserClient = Callable[..., httpx.Client]


@pytest.fixture
def client(token_server: RegistryProcess, pki: Path) -> Iterator[httpx.Client]:
    with https(token_server, pki) as http:
        yield http


@pytest.fixture
def as_user(client: httpx.Client, token_server: RegistryProcess, pki: Path) -> Iterator[UserClient]:
    """A client sending a token of `user` (None: anonymous) for `scopes` with every request."""
    opened: list[httpx.Client] = []

    def make(user: str | None, *scopes: str) -> httpx.Client:
        session = https(token_server, pki)
        session.headers.update(bearer(token(client, user, *scopes)))
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()


def push_image(client: httpx.Client, repo: str, tag: str = "1") -> str:
    body = image_manifest(client, repo, layers=[b"layer of " + repo.encode() + os.urandom(8)])
    response = put_manifest(client, repo, tag, body)
    assert response.status_code == 201, response.text
    return sha256(body)


def challenge(response: httpx.Response) -> dict[str, str]:
    scheme, _, params = response.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer"
    found = {}
    for item in params.split('",'):
        key, _, value = item.partition("=")
        found[key] = value.strip('"')
    return found


def server_key(server: RegistryProcess) -> SigningKey:
    return SigningKey.from_pem((server.data_dir / "token.key").read_bytes())


def forged(key: SigningKey, **overrides: object) -> str:
    base = claims_for(
        "registry",
        "alice",
        "registry",
        300,
        access=[{"type": "repository", "name": "dev/forged", "actions": ["pull", "push"]}],
    )
    base.update(overrides)
    return key.sign(base)


# The challenge


def test_version_check_challenges_with_realm_service_and_no_scope(client: httpx.Client, token_server) -> None:
    response = client.get("/v2/")
    assert response.status_code == 401
    assert errors(response) == ["UNAUTHORIZED"]
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    params = challenge(response)
    assert params == {"realm": f"https://127.0.0.1:{token_server.port}/auth/token", "service": "registry"}


def test_requests_are_challenged_with_the_scope_they_need(client: httpx.Client) -> None:
    cases = {
        ("GET", "/v2/dev/app/manifests/1"): "repository:dev/app:pull",
        ("HEAD", "/v2/dev/app/blobs/sha256:" + "0" * 64): "repository:dev/app:pull",
        ("GET", "/v2/dev/app/tags/list"): "repository:dev/app:pull",
        ("PUT", "/v2/dev/app/manifests/1"): "repository:dev/app:pull,push",
        ("POST", "/v2/dev/app/blobs/uploads/"): "repository:dev/app:pull,push",
        ("DELETE", "/v2/dev/app/manifests/sha256:" + "0" * 64): "repository:dev/app:delete",
        ("GET", "/v2/_catalog"): "registry:catalog:*",
        ("POST", "/v2/dev/app/blobs/uploads/?mount=sha256:" + "0" * 64 + "&from=dev/src"): (
            "repository:dev/app:pull,push repository:dev/src:pull"
        ),
    }
    for (method, path), scope in cases.items():
        response = client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert challenge(response)["scope"] == scope, (method, path)


def test_realm_follows_forwarded_headers_but_not_injected_text(client: httpx.Client) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}
    assert (
        challenge(client.get("/v2/", headers=forwarded))["realm"] == "https://registry.example.com/auth/token"
    )
    injected = {"X-Forwarded-Host": 'evil.example.com",service="other'}
    params = challenge(client.get("/v2/", headers=injected))
    assert params["service"] == "registry" and "evil" not in params["realm"]


def test_http2_is_negotiated(token_server: RegistryProcess, pki: Path) -> None:
    with httpx.Client(base_url=token_server.url, verify=ssl_context(pki), http2=True) as http2:
        response = http2.get("/v2/")
    assert response.http_version == "HTTP/2" and response.status_code == 401


# The token service


def test_token_holds_the_intersection_of_asked_and_allowed(client: httpx.Client) -> None:
    answer = get_token(client, "bob", "repository:dev/app:pull,push", "repository:secret/x:pull")
    header, payload = claims(answer["token"])
    assert header["alg"] == "ES256" and header["kid"] and header["typ"] == "JWT"
    assert payload["sub"] == "bob" and payload["iss"] == "registry" and payload["aud"] == "registry"
    assert payload["access"] == [{"type": "repository", "name": "dev/app", "actions": ["pull"]}]
    assert payload["exp"] - payload["iat"] == answer["expires_in"] == 300
    assert answer["access_token"] == answer["token"] and answer["issued_at"].endswith("Z")


def test_star_and_space_separated_scopes_and_resource_classes(client: httpx.Client) -> None:
    _, payload = claims(token(client, "alice", "repository(plugin):alice/a:* repository:dev/b:pull"))
    access = {entry["name"]: entry["actions"] for entry in payload["access"]}
    assert access == {"alice/a": ["delete", "pull", "push"], "dev/b": ["pull"]}


def test_account_parameter_is_ignored(client: httpx.Client) -> None:
    answer = get_token(client, "alice", "repository:dev/app:pull", account="admin")
    assert claims(answer["token"])[1]["sub"] == "alice"


def test_wrong_password_unknown_user_and_bad_requests(client: httpx.Client) -> None:
    for headers in (basic("alice", "wrong"), basic("nobody", "whatever"), {"Authorization": "Basic !!"}):
        response = client.get("/auth/token", params={"service": "registry"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    response = client.get("/auth/token", params={"service": "another-registry"}, headers=basic("alice"))
    assert response.status_code == 400
    response = client.get(
        "/auth/token", params={"scope": "repository-without-actions"}, headers=basic("alice")
    )
    assert response.status_code == 400


def test_anonymous_token_carries_only_anonymous_access(client: httpx.Client) -> None:
    _, payload = claims(token(client, None, "repository:public/tool:pull,push", "repository:dev/app:pull"))
    assert payload["sub"] == ""
    assert payload["access"] == [{"type": "repository", "name": "public/tool", "actions": ["pull"]}]


def test_offline_token_and_refresh_grant(client: httpx.Client) -> None:
    answer = get_token(client, "alice", offline_token="true")
    refresh = answer["refresh_token"]
    response = client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "registry",
            "client_id": "test",
            "scope": "repository:dev/app:pull,push repository:secret/x:pull",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "repository:dev/app:pull,push"
    assert body["refresh_token"] == refresh
    assert claims(body["access_token"])[1]["sub"] == "alice"
    # A refresh token is no access token, and an access token no refresh token.
    assert client.get("/v2/", headers=bearer(refresh)).status_code == 401
    response = client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["access_token"], "service": "registry"},
    )
    assert response.status_code == 401


def test_password_grant(client: httpx.Client) -> None:
    form = {"grant_type": "password", "username": "bob", "password": PASSWORDS["bob"], "service": "registry"}
    response = client.post("/auth/token", data={**form, "scope": "repository:dev/app:push,pull"})
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "repository:dev/app:pull"
    assert "refresh_token" not in response.json()
    response = client.post("/auth/token", data={**form, "access_type": "offline"})
    assert response.json()["refresh_token"]
    assert client.post("/auth/token", data={**form, "password": "wrong"}).status_code == 401
    assert client.post("/auth/token", data={**form, "grant_type": "client_credentials"}).status_code == 400


def test_new_password_revokes_refresh_tokens(client: httpx.Client, token_server: RegistryProcess) -> None:
    refresh = get_token(client, "dora", offline_token="true")["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": "registry"}
    assert client.post("/auth/token", data=form).status_code == 200
    args = data_args(token_server.data_dir, token_server.database_url)
    assert cli("user", "passwd", "dora", "--password-stdin", *args, stdin="dora-new-password") == 0
    assert client.post("/auth/token", data=form).status_code == 401
    assert client.get("/auth/token", headers=basic("dora", "dora-new-password")).status_code == 200


def test_group_membership_applies_to_the_next_token(
    client: httpx.Client, token_server: RegistryProcess
) -> None:
    args = data_args(token_server.data_dir, token_server.database_url)
    assert not claims(token(client, "carol", "repository:dev/app:push"))[1]["access"]
    assert cli("group", "add-member", "dev", "carol", *args) == 0
    try:
        assert claims(token(client, "carol", "repository:dev/app:push"))[1]["access"]
    finally:
        assert cli("group", "rm-member", "dev", "carol", *args) == 0
    assert not claims(token(client, "carol", "repository:dev/app:push"))[1]["access"]


def test_edited_rules_apply_without_restart(client: httpx.Client, token_server: RegistryProcess) -> None:
    rules = token_server.data_dir.parent / "rules.yaml"
    extra = '  - who: [user:carol]\n    repositories: ["dev/carol-only"]\n    actions: [pull]\n'
    rules.write_text(RULES + extra)
    try:
        deadline = time.monotonic() + 10
        while not claims(token(client, "carol", "repository:dev/carol-only:pull"))[1]["access"]:
            assert time.monotonic() < deadline, "the edited rules were not picked up"
            time.sleep(0.3)
    finally:
        rules.write_text(RULES)
        os.utime(rules, (time.time() + 5, time.time() + 5))  # a new mtime even within the same second


# Using tokens


def test_push_pull_and_own_namespace(client: httpx.Client, as_user: UserClient) -> None:
    alice = as_user("alice", "repository:dev/app:pull,push")
    digest = push_image(alice, "dev/app")
    assert alice.get("/v2/dev/app/manifests/1", headers={"Accept": OCI_MANIFEST}).status_code == 200
    bob = as_user("bob", "repository:dev/app:pull")
    response = bob.get(f"/v2/dev/app/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    # Deleting needs delete, which alice has in her own namespace only.
    assert alice.delete(f"/v2/dev/app/manifests/{digest}").status_code == 403
    own = as_user("alice", "repository:alice/tools:*")
    own_digest = push_image(own, "alice/tools")
    assert own.delete(f"/v2/alice/tools/manifests/{own_digest}").status_code == 202


def test_push_with_a_pull_only_token_is_denied(
    client: httpx.Client, as_user: UserClient, token_server: RegistryProcess
) -> None:
    bob = as_user("bob", "repository:dev/app:pull,push")
    response = bob.post("/v2/dev/app/blobs/uploads/")
    assert response.status_code == 403
    assert errors(response) == ["DENIED"]
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
    response = bob.put("/v2/dev/app/manifests/evil", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 403
    assert "event=denied user=bob" in token_server.log.read_text()


def test_token_for_one_repository_does_not_open_another(client: httpx.Client, as_user: UserClient) -> None:
    alice = as_user("alice", "repository:dev/app:pull,push")
    # Where the rules would allow it, the client is told to fetch a token with the right scope...
    for path in ("/v2/dev/app2/tags/list", "/v2/dev/app/sub/tags/list", "/v2/dev/app/manifests/1/tags/list"):
        response = alice.get(path)
        assert response.status_code == 401, path
        assert challenge(response)["error"] == "insufficient_scope"
    # ... where they would not, asking again does not help: 403.
    for path in ("/v2/dev/tags/list", "/v2/secret/x/tags/list", "/v2/bob/x/tags/list"):
        response = alice.get(path)
        assert response.status_code == 403, path
        assert errors(response) == ["DENIED"]


def test_anonymous_pull_of_public_only(client: httpx.Client, as_user: UserClient) -> None:
    admin = as_user("admin", "repository:public/tool:push,pull", "repository:secret/x:push,pull")
    push_image(admin, "public/tool")
    push_image(admin, "secret/x")
    anonymous = as_user(None, "repository:public/tool:pull", "repository:secret/x:pull")
    assert anonymous.get("/v2/public/tool/tags/list").json()["tags"] == ["1"]
    response = anonymous.get("/v2/secret/x/tags/list")
    assert response.status_code == 401 and errors(response) == ["UNAUTHORIZED"]
    assert anonymous.post("/v2/public/tool/blobs/uploads/").status_code == 401


def test_catalog_shows_only_what_the_caller_may_pull(client: httpx.Client, as_user: UserClient) -> None:
    admin = as_user("admin", *(f"repository:{r}:push,pull" for r in ("dev/c1", "carol/c", "secret/c")))
    for repo in ("dev/c1", "carol/c", "secret/c"):
        push_blob(admin, repo, b"catalog " + repo.encode())
    assert client.get("/v2/_catalog").status_code == 401

    def catalog(user: str | None, **params: str) -> list[str]:
        response = as_user(user, "registry:catalog:*").get("/v2/_catalog", params=params)
        assert response.status_code == 200, response.text
        return response.json()["repositories"]

    alice = catalog("alice")
    assert "dev/c1" in alice and "carol/c" not in alice and "secret/c" not in alice
    assert all(name.startswith(("dev/", "alice/")) for name in alice)
    assert catalog("carol") == ["carol/c"]
    assert all(name.startswith("public/") for name in catalog(None))
    assert {"dev/c1", "carol/c", "secret/c"} <= set(catalog("admin"))
    # Pages are filled with visible names, whatever hides between them.
    assert catalog("carol", n="1") == ["carol/c"]
    paged, last = [], ""
    while True:
        page = catalog("alice", n="1", last=last)
        if not page:
            break
        paged += page
        last = page[-1]
    assert paged == alice


def test_mount_needs_pull_on_the_source(client: httpx.Client, as_user: UserClient) -> None:
    admin = as_user("admin", "repository:secret/store:push,pull", "repository:dev/open:push,pull")
    hidden = push_blob(admin, "secret/store", b"a secret layer")
    shared = push_blob(admin, "dev/open", b"a shared layer")
    alice = as_user(
        "alice",
        "repository:dev/target:pull,push",
        "repository:secret/store:pull",
        "repository:dev/open:pull",
    )
    # Forbidden source: an ordinary upload session starts, and nothing says the blob exists.
    response = alice.post("/v2/dev/target/blobs/uploads/", params={"mount": hidden, "from": "secret/store"})
    assert response.status_code == 202
    assert response.headers["Location"].startswith("/v2/dev/target/blobs/uploads/")
    assert alice.head(f"/v2/dev/target/blobs/{hidden}").status_code == 404
    # Without `from`, only the repositories alice's rules let her pull are searched.
    response = alice.post("/v2/dev/target/blobs/uploads/", params={"mount": hidden})
    assert response.status_code == 202
    assert alice.head(f"/v2/dev/target/blobs/{hidden}").status_code == 404
    # Allowed source: mounted.
    response = alice.post("/v2/dev/target/blobs/uploads/", params={"mount": shared, "from": "dev/open"})
    assert response.status_code == 201
    assert alice.head(f"/v2/dev/target/blobs/{shared}").status_code == 200


def test_path_tricks_never_reach_another_repository(
    client: httpx.Client, as_user: UserClient, pki: Path, token_server
) -> None:
    admin = as_user("admin", "repository:secret/vault:push,pull")
    push_image(admin, "secret/vault")
    jwt = token(client, "alice", "repository:dev/app:pull,push")

    def raw(method: str, path: str) -> tuple[int, bytes]:
        """Send the path as is: HTTP clients would normalise the dots and escapes away."""
        connection = http.client.HTTPSConnection("127.0.0.1", token_server.port, context=ssl_context(pki))
        connection.request(method, path, headers={**bearer(jwt), "Accept": OCI_MANIFEST})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body

    for path in (
        "/v2/dev/app/../../secret/vault/manifests/1",
        "/v2/dev/app/..%2F..%2Fsecret/vault/manifests/1",
        "/v2/dev/app%2F..%2F..%2Fsecret%2Fvault/manifests/1",
        "/v2/dev/app/manifests/../../../secret/vault/manifests/1",
        "/v2/secret/vault/manifests/1",
        "/v2/secret%2Fvault/manifests/1",
        "/v2/dev/app//../secret/vault/tags/list",
        "/v2/DEV/APP/../../secret/vault/tags/list",
        "/v2/./secret/vault/tags/list",
    ):
        status, body = raw("GET", path)
        assert status in (400, 401, 403, 404), (path, status)
        assert b"schemaVersion" not in body and b'"tags"' not in body, path


# Tokens that must be refused


def test_forged_and_broken_tokens_are_refused(client: httpx.Client, token_server: RegistryProcess) -> None:
    key = server_key(token_server)
    now = time.time()
    header_none = b64url(json.dumps({"typ": "JWT", "alg": "none"}).encode())
    payload = b64url(json.dumps(claims_for("registry", "alice", "registry", 300)).encode())
    valid = forged(key)
    other_key = SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256", key.kid)
    head, _, signature = valid.split(".")
    tampered_body = b64url(
        json.dumps(
            {
                **claims(valid)[1],
                "access": [{"type": "repository", "name": "secret/vault", "actions": ["pull"]}],
            }
        ).encode()
    )
    refused = {
        "alg none": f"{header_none}.{payload}.",
        "alg none, signature kept": f"{header_none}.{payload}.{signature}",
        "HS256 keyed with the public key": _hs256(key, payload),
        "signed by another key": forged(other_key),
        "tampered claims": f"{head}.{tampered_body}.{signature}",
        "expired": forged(key, exp=int(now) - 3600, nbf=int(now) - 4000, iat=int(now) - 4000),
        "not yet valid": forged(key, nbf=int(now) + 3600, iat=int(now) + 3600, exp=int(now) + 4000),
        "no expiry": forged(key, exp=None),
        "wrong issuer": forged(key, iss="someone-else"),
        "another service": forged(key, aud="another-registry"),
        "a refresh token": forged(key, token_use="refresh"),
        "malformed access": forged(key, access="repository:dev/forged:pull"),
        "garbage": "not.a.token",
    }
    for reason, jwt in refused.items():
        response = client.get("/v2/dev/forged/tags/list", headers=bearer(jwt))
        assert response.status_code == 401, reason
        assert challenge(response)["error"] == "invalid_token", reason
    # The control: the same construction with nothing wrong is accepted.
    assert client.get("/v2/dev/forged/tags/list", headers=bearer(valid)).status_code == 404


def _hs256(key: SigningKey, payload: str) -> str:
    secret = key.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64url(json.dumps({"typ": "JWT", "alg": "HS256", "kid": key.kid}).encode())
    mac = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64url(mac)}"


def test_external_issuer_is_trusted_for_its_own_name_only(client: httpx.Client, token_server) -> None:
    corp, _ = SigningKey.load_or_create(token_server.data_dir.parent / "corp.key")
    access = [{"type": "repository", "name": "dev/app", "actions": ["pull"]}]
    good = corp.sign(claims_for("corp-sso", "someone", "registry", 300, access=access))
    assert client.get("/v2/dev/app/tags/list", headers=bearer(good)).status_code == 200
    posing = corp.sign(claims_for("registry", "someone", "registry", 300, access=access))
    assert client.get("/v2/dev/app/tags/list", headers=bearer(posing)).status_code == 401
    elsewhere = corp.sign(claims_for("corp-sso", "someone", "other-registry", 300, access=access))
    assert client.get("/v2/dev/app/tags/list", headers=bearer(elsewhere)).status_code == 401


def test_token_replayed_to_another_service_is_refused(
    client: httpx.Client, token_server: RegistryProcess, pki: Path, own_database: str, tmp_path: Path
) -> None:
    """Even a registry sharing the signing key refuses tokens issued for another service name."""
    other = start(
        tmp_path / "other",
        own_database,
        REGISTRY_AUTH_MODE="token",
        REGISTRY_AUTH_TOKEN_SERVICE="other-registry",
        REGISTRY_TOKENS_KEY=str(token_server.data_dir / "token.key"),
        **tls_env(pki),
    )
    try:
        with https(other, pki) as other_client:
            jwt = token(client, "admin", "repository:dev/app:pull")
            response = other_client.get("/v2/dev/app/tags/list", headers=bearer(jwt))
            assert response.status_code == 401
            assert challenge(response)["error"] == "invalid_token"
            assert challenge(response)["service"] == "other-registry"
            # The control: the other registry's own anonymous token works there, and not here.
            own = other_client.get("/auth/token", params={"service": "other-registry"}).json()["token"]
            assert other_client.get("/v2/", headers=bearer(own)).status_code == 200
            assert client.get("/v2/", headers=bearer(own)).status_code == 401
    finally:
        other.stop()


def test_audit_log_names_who_what_where(
    client: httpx.Client, as_user: UserClient, token_server: RegistryProcess
) -> None:
    own = as_user("alice", "repository:alice/audited:*")
    digest = push_image(own, "alice/audited", tag="v1")
    assert own.delete(f"/v2/alice/audited/manifests/{digest}").status_code == 202
    client.get("/auth/token", headers=basic("alice", "wrong-password"))
    log = token_server.log.read_text()
    assert "event=login user=alice address=127.0.0.1 outcome=ok" in log
    assert "event=push user=alice address=127.0.0.1 repository=alice/audited target=v1 status=201" in log
    assert (
        f"event=delete user=alice address=127.0.0.1 repository=alice/audited target={digest} status=202"
        in log
    )
    assert "event=login user=alice address=127.0.0.1 outcome=failed" in log


def test_openapi_description_is_readable_without_a_token(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert "/v2/{name}/manifests/{reference}" in response.json()["paths"]


def test_token_counters_move(client: httpx.Client) -> None:
    """/metrics counts tokens issued and refused (by reason), so an operator sees a credential-stuffing
    run or a broken CI secret."""

    def counts() -> dict[str, float]:
        text = client.get("/metrics").text
        return {
            sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "registry_token_requests"
            for sample in family.samples
            if sample.name.endswith("_total")
        }

    before = counts()
    get_token(client, "alice", "repository:alice/app:pull")
    get_token(client, None)
    refused = client.get("/auth/token", params={"service": "registry"}, headers=basic("alice", "wrong"))
    assert refused.status_code == 401
    after = counts()
    assert after.get("issued", 0) - before.get("issued", 0) == 2
    assert after.get("credentials", 0) - before.get("credentials", 0) == 1
