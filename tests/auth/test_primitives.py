"""The building blocks in process: JWT signing and verification, key files, passwords, the failed-login
limiter, the public URL and client address behind proxies, and audit lines."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from registry.auth.audit import audit
from registry.auth.origin import client_address, public_base_url
from registry.auth.passwords import Htpasswd, hash_password, verify_password
from registry.auth.ratelimit import FailureLimiter
from registry.auth.tokens import (
    SigningKey,
    TokenError,
    TrustedIssuer,
    Verifier,
    b64url,
    claims_for,
    key_id,
    libtrust_key_id,
    load_public_keys,
    public_jwk,
    unb64url,
)
from registry.cli.checks import check_exposure
from registry.config import Settings
from tests.auth.conftest import cli


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def es256() -> SigningKey:
    return SigningKey.from_pem(_pem(ec.generate_private_key(ec.SECP256R1())))


@pytest.fixture(scope="module")
def rs256() -> SigningKey:
    return SigningKey.from_pem(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))


def verifier(*keys: SigningKey, issuer: str = "registry") -> Verifier:
    return Verifier([TrustedIssuer(frozenset({issuer}), {k.kid: k.public for k in keys})], "registry")


def test_es256_and_rs256_round_trip(es256: SigningKey, rs256: SigningKey) -> None:
    assert (es256.alg, rs256.alg) == ("ES256", "RS256")
    for key in (es256, rs256):
        token = key.sign(claims_for("registry", "alice", "registry", 60, access=[]))
        assert verifier(es256, rs256).verify(token)["sub"] == "alice"
        header = json.loads(unb64url(token.split(".")[0]))
        assert header == {"typ": "JWT", "alg": key.alg, "kid": key.kid}


def test_an_algorithm_must_fit_its_key(es256: SigningKey, rs256: SigningKey) -> None:
    """An RS256 header on a token whose kid names an EC key (and the reverse) is refused."""
    token = rs256.sign(claims_for("registry", "alice", "registry", 60))
    _, payload, signature = token.split(".")
    swapped = b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": es256.kid}).encode())
    with pytest.raises(TokenError):
        verifier(es256, rs256).verify(f"{swapped}.{payload}.{signature}")
    es384 = b64url(json.dumps({"typ": "JWT", "alg": "ES384", "kid": es256.kid}).encode())
    with pytest.raises(TokenError):
        verifier(es256).verify(f"{es384}.{payload}.{signature}")


def test_time_window_with_leeway(es256: SigningKey) -> None:
    token = es256.sign(claims_for("registry", "alice", "registry", 300, now=1_000_000))
    check = verifier(es256)
    check.verify(token, now=1_000_000 - 30)  # a little clock skew is fine
    check.verify(token, now=1_000_300 + 30)
    with pytest.raises(TokenError, match="not valid yet"):
        check.verify(token, now=1_000_000 - 120)
    with pytest.raises(TokenError, match="expired"):
        check.verify(token, now=1_000_300 + 120)


def test_critical_headers_and_audience_lists(es256: SigningKey) -> None:
    listed = es256.sign(claims_for("registry", "a", ["other", "registry"], 60))  # type: ignore[arg-type]
    assert verifier(es256).verify(listed)["sub"] == "a"
    payload = b64url(json.dumps(claims_for("registry", "a", "registry", 60)).encode())
    crit = b64url(json.dumps({"alg": "ES256", "kid": es256.kid, "crit": ["exp"]}).encode())
    with pytest.raises(TokenError, match="critical"):
        verifier(es256).verify(f"{crit}.{payload}.AAAA")


def test_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token.key"
    first, created = SigningKey.load_or_create(path)
    again, created_again = SigningKey.load_or_create(path)
    assert created and not created_again
    assert first.kid == again.kid == key_id(first.public)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["token.key"]


def test_weak_rsa_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        SigningKey.from_pem(_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))


def test_trusted_keys_from_pem_certificates_and_jwks(
    tmp_path: Path, es256: SigningKey, rs256: SigningKey
) -> None:
    assert cli("cert", "init", "--ip", "127.0.0.1", "--out", str(tmp_path)) == 0
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    pem = tmp_path / "keys.pem"
    pem.write_bytes(
        es256.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    keys = load_public_keys(pem)
    assert {es256.kid, libtrust_key_id(es256.public), key_id(ca.public_key())} <= set(keys)
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [{**public_jwk(rs256.public), "kid": "corp-2024"}]}))
    keys = load_public_keys(jwks)
    assert list(keys) == ["corp-2024"]
    token = SigningKey(rs256.private, "RS256", "corp-2024").sign(claims_for("corp", "x", "registry", 60))
    assert Verifier([TrustedIssuer(frozenset({"corp"}), keys)], "registry").verify(token)["sub"] == "x"
    (tmp_path / "empty.pem").write_text("nothing here")
    with pytest.raises(ValueError):
        load_public_keys(tmp_path / "empty.pem")


def test_libtrust_key_id_format(es256: SigningKey) -> None:
    kid = libtrust_key_id(es256.public)
    assert len(kid.split(":")) == 12 and all(len(part) == 4 for part in kid.split(":"))


# Passwords


def test_scrypt_hashes_verify_and_differ() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("$scrypt$ln=14,r=8,p=1$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsE", first)
    for broken in ("", "$scrypt$", "$scrypt$ln=40,r=8,p=1$AAAA$AAAA", "plain", first[:-4]):
        assert not verify_password("correct horse", broken)


def test_htpasswd_bcrypt_as_distribution_writes_it(tmp_path: Path) -> None:
    # `htpasswd -B` writes $2y$ hashes; Python's bcrypt writes $2b$: the same algorithm.
    hashed = bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$", 1)
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\nhank:{hashed}\nbroken-line\n")
    file = Htpasswd(path)
    assert file.lookup("hank") == hashed and file.lookup("broken-line") is None
    assert verify_password("s3cret-pw", hashed)
    assert not verify_password("wrong", hashed)
    assert not verify_password("x" * 100, hashed)  # over bcrypt's 72 bytes: a mismatch, not a crash
    os.utime(path, (1, 1))
    path.write_text(f"ivy:{hashed}\n")
    assert file.lookup("ivy") == hashed and file.lookup("hank") is None


# The failed-login limiter


def test_limiter_blocks_after_the_limit_until_the_window_passes() -> None:
    now = [0.0]
    limiter = FailureLimiter(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("k") == 0
        limiter.failed("k")
        now[0] += 1
    assert limiter.retry_after("k") == pytest.approx(57)
    assert limiter.retry_after("other") == 0
    now[0] = 60.5
    assert limiter.retry_after("k") == 0  # the first failure aged out
    limiter.failed("k")
    assert limiter.retry_after("k") > 0
    limiter.forget("k")
    assert limiter.retry_after("k") == 0
    assert FailureLimiter(0, 60).retry_after("k") == 0


# Where requests come from


def _scope(headers: dict[str, str], client: str = "10.0.0.1", scheme: str = "http") -> dict:
    return {
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (client, 1234),
        "scheme": scheme,
        "server": ("127.0.0.1", 5000),
    }


def test_public_base_url() -> None:
    assert public_base_url(_scope({"Host": "reg:5000"})) == "http://reg:5000"
    assert public_base_url(_scope({"Host": "reg"}, scheme="https")) == "https://reg"
    forwarded = {"Host": "internal:5000", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "reg.example.com"}
    assert public_base_url(_scope(forwarded)) == "https://reg.example.com"
    assert public_base_url(_scope(forwarded), "https://configured.example/") == "https://configured.example"
    hostile = {"Host": 'a"b', "X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "x y"}
    assert public_base_url(_scope(hostile)) == "http://127.0.0.1:5000"
    assert public_base_url(_scope({"Host": "[::1]:5000"})) == "http://[::1]:5000"


def test_client_address_trusts_forwarded_for_only_from_proxies() -> None:
    headers = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    assert client_address(_scope(headers)) == "10.0.0.1"
    assert client_address(_scope(headers), {"10.0.0.1"}) == "10.0.0.2"
    assert client_address(_scope(headers), {"10.0.0.1", "10.0.0.2"}) == "203.0.113.9"


def test_audit_lines_quote_what_clients_chose(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="registry.audit"):
        audit("login", "mallory\nevent=push user=admin", "10.0.0.1", outcome="failed")
        audit("push", "alice", "10.0.0.1", repository="team/app", target="1.0", status=201)
        audit("login", "", "10.0.0.1", outcome="failed")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == 'event=login user="mallory\\nevent=push user=admin" address=10.0.0.1 outcome=failed'
    assert lines[1] == "event=push user=alice address=10.0.0.1 repository=team/app target=1.0 status=201"
    assert lines[2].startswith("event=login user=- ")


# Safe by default


def test_no_auth_beyond_loopback_needs_an_explicit_choice(caplog: pytest.LogCaptureFixture) -> None:
    for listen in ("127.0.0.1:5000", "[::1]:5000", "localhost:5000"):
        check_exposure(Settings().with_overrides({"http.addr": listen}))
    for listen in ("0.0.0.0:5000", "[::]:5000", "192.0.2.1:5000", "registry.example.com:5000"):
        with pytest.raises(ValueError, match="without authentication"):
            check_exposure(Settings().with_overrides({"http.addr": listen}))
        check_exposure(Settings().with_overrides({"http.addr": listen, "auth.mode": "token"}))
    with caplog.at_level(logging.WARNING, logger="registry"):
        check_exposure(
            Settings().with_overrides({"http.addr": "0.0.0.0:5000", "auth.allow_anonymous_remote": True})
        )
    assert "without authentication" in caplog.text


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        Settings().with_overrides({"auth.mode": "kerberos"})
    with pytest.raises(ValueError):
        Settings().with_overrides({"http.tls.certificate": "server.crt"})
    with pytest.raises(ValueError):
        Settings().with_overrides({"http.tls.clientcas": "ca.crt"})
