"""JSON Web Tokens as Distribution's token auth uses them (docs/content/spec/auth/jwt.md), with
`cryptography` only.

Signing: ES256 (an EC P-256 key, the default) or RS256 (an RSA key), with a `kid` header naming the key
by its RFC 7638 thumbprint. Verifying is deliberately narrow: an allow-list of asymmetric algorithms
(so `alg: none` and HMAC tricks with a public key as the secret are impossible), the algorithm must fit
the key the `kid` names, the issuer must be one that key is trusted for, the audience must be this
registry's service, and the token must be inside its `nbf`..`exp` window.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# alg -> (hash, EC curve or None for RSA)
_ALGORITHMS: dict[str, tuple[type[hashes.HashAlgorithm], type[ec.EllipticCurve] | None]] = {
    "ES256": (hashes.SHA256, ec.SECP256R1),
    "ES384": (hashes.SHA384, ec.SECP384R1),
    "ES512": (hashes.SHA512, ec.SECP521R1),
    "RS256": (hashes.SHA256, None),
    "RS384": (hashes.SHA384, None),
    "RS512": (hashes.SHA512, None),
}
_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
MIN_RSA_BITS = 2048
# Clock skew tolerated between the token service and this registry, as Distribution allows.
LEEWAY = 60
REFRESH = "refresh"
_PEM_BLOCK = re.compile(rb"-----BEGIN (?P<kind>[A-Z ]+)-----.+?-----END (?P=kind)-----", re.DOTALL)


class TokenError(Exception):
    """The token is not one this registry accepts; the message says why (for the log, not the client)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    if not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int, length: int) -> str:
    return b64url(value.to_bytes(length, "big"))


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The members of a public JWK that RFC 7638 hashes (so no `kid`, `alg` or `use`)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = next(name for name, curve in _CURVES.items() if isinstance(key.curve, curve))
        return {"crv": crv, "kty": "EC", "x": _int_b64(numbers.x, size), "y": _int_b64(numbers.y, size)}
    numbers = key.public_numbers()
    return {
        "e": _int_b64(numbers.e, (numbers.e.bit_length() + 7) // 8),
        "kty": "RSA",
        "n": _int_b64(numbers.n, (numbers.n.bit_length() + 7) // 8),
    }


def key_id(key: PublicKey) -> str:
    """RFC 7638 thumbprint: the key's id as Distribution (v3) computes it for trusted certificates."""
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def libtrust_key_id(key: PublicKey) -> str:
    """The key id older Distribution releases and token services (libtrust) put in `kid`: base32 of
    the first 240 bits of the SHA-256 of the DER public key, in 12 groups of 4."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


def _algorithm_for(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        for alg, (_, curve) in _ALGORITHMS.items():
            if curve is not None and isinstance(key.curve, curve):
                return alg
        raise ValueError(f"unsupported EC curve {key.curve.name}")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA signing keys need at least {MIN_RSA_BITS} bits")
    return "RS256"


@dataclass(frozen=True)
class SigningKey:
    private: PrivateKey
    alg: str
    kid: str

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        private = serialization.load_pem_private_key(data, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the token key must be an EC or RSA private key")
        return cls(private, _algorithm_for(private), key_id(private.public_key()))

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[SigningKey, bool]:
        """The key in `path`, made (EC P-256) if there is none; True when it was just made. Creation is
        atomic (write aside, then link), so workers starting together all end up with the same key."""
        if not path.exists():
            private = ec.generate_private_key(ec.SECP256R1())
            pem = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(pem)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(aside, path)
                return cls.from_pem(pem), True
            except FileExistsError:
                pass
            finally:
                aside.unlink()
        return cls.from_pem(path.read_bytes()), False

    @property
    def public(self) -> PublicKey:
        return self.private.public_key()

    def sign(self, claims: Mapping[str, Any]) -> str:
        header = {"typ": "JWT", "alg": self.alg, "kid": self.kid}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        ).encode()
        hash_type = _ALGORITHMS[self.alg][0]()
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hash_type)))
            size = (self.private.curve.key_size + 7) // 8
            signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        else:
            signature = self.private.sign(signing_input, padding.PKCS1v15(), hash_type)
        return signing_input.decode() + "." + b64url(signature)


def claims_for(
    issuer: str, subject: str, audience: str, lifetime: int, now: float | None = None, **extra: Any
) -> dict[str, Any]:
    issued = int(now if now is not None else time.time())
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": issued + lifetime,
        "nbf": issued,
        "iat": issued,
        "jti": uuid.uuid4().hex,
        **extra,
    }


def _verify_signature(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> None:
    hash_type, curve = _ALGORITHMS[alg]
    if curve is not None:
        if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve)):
            raise TokenError(f"{alg} does not fit the key")
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise TokenError("malformed signature")
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_type()))
    else:
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
            raise TokenError(f"{alg} does not fit the key")
        key.verify(signature, signing_input, padding.PKCS1v15(), hash_type())


@dataclass(frozen=True)
class TrustedIssuer:
    """Keys (by kid) whose tokens are believed, and the issuer names tokens signed by them may carry."""

    names: frozenset[str]
    keys: Mapping[str, PublicKey]


class Verifier:
    def __init__(self, issuers: Sequence[TrustedIssuer], audience: str, leeway: float = LEEWAY) -> None:
        self.issuers = issuers
        self.audience = audience
        self.leeway = leeway

    def verify(self, token: str, use: str = "access", now: float | None = None) -> dict[str, Any]:
        """The claims of a token that passes every check; TokenError otherwise. `use` separates access
        tokens from refresh tokens, so neither is accepted where the other is expected."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a signed JWT")
        try:
            header = json.loads(unb64url(parts[0]))
            claims = json.loads(unb64url(parts[1]))
            signature = unb64url(parts[2])
        except ValueError as error:
            raise TokenError(f"malformed token: {error}") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError("malformed token")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in _ALGORITHMS:
            raise TokenError(f"algorithm {alg!r} is not accepted")
        if "crit" in header:
            raise TokenError("critical header extensions are not supported")
        issuer = next((i for i in self.issuers if isinstance(kid, str) and kid in i.keys), None)
        if issuer is None:
            raise TokenError(f"unknown signing key {kid!r}")
        try:
            _verify_signature(issuer.keys[kid], alg, f"{parts[0]}.{parts[1]}".encode(), signature)
        except InvalidSignature:
            raise TokenError("bad signature") from None
        self._check_claims(claims, issuer, use, time.time() if now is None else now)
        return claims

    def _check_claims(self, claims: dict[str, Any], issuer: TrustedIssuer, use: str, now: float) -> None:
        if claims.get("iss") not in issuer.names:
            raise TokenError(f"issuer {claims.get('iss')!r} is not trusted for this key")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise TokenError(f"audience {audience!r} is not this registry ({self.audience!r})")
        expires, not_before = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise TokenError("no expiry")
        if now > expires + self.leeway:
            raise TokenError("expired")
        if not_before is not None and (
            not isinstance(not_before, int | float) or now < not_before - self.leeway
        ):
            raise TokenError("not valid yet")
        if not isinstance(claims.get("sub", ""), str):
            raise TokenError("malformed subject")
        if claims.get("token_use", "access") != use:
            raise TokenError(f"not an {use} token")


def load_public_keys(path: Path) -> dict[str, PublicKey]:
    """Trusted keys from a PEM file (public keys and/or certificates) or a JWKS document. Each PEM key
    is known by both key-id styles, so tokens from Distribution-era and RFC 7638 services both match."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        return _jwks(json.loads(data))
    keys: list[Any] = []
    for block in _PEM_BLOCK.finditer(data):
        if block.group("kind") == b"CERTIFICATE":
            keys.append(x509.load_pem_x509_certificate(block.group(0)).public_key())
        elif block.group("kind") == b"PUBLIC KEY":
            keys.append(serialization.load_pem_public_key(block.group(0)))
    found: dict[str, PublicKey] = {}
    for key in keys:
        if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            found[key_id(key)] = key
            found[libtrust_key_id(key)] = key
    if not found:
        raise ValueError(f"{path}: no EC or RSA public keys or certificates found")
    return found


def _jwks(document: Any) -> dict[str, PublicKey]:
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("a JWKS document needs a 'keys' list")
    found: dict[str, PublicKey] = {}
    for jwk in keys:
        key: PublicKey
        if jwk.get("kty") == "EC" and jwk.get("crv") in _CURVES:
            x, y = (int.from_bytes(unb64url(jwk[c]), "big") for c in ("x", "y"))
            key = ec.EllipticCurvePublicNumbers(x, y, _CURVES[jwk["crv"]]()).public_key()
        elif jwk.get("kty") == "RSA":
            n, e = (int.from_bytes(unb64url(jwk[c]), "big") for c in ("n", "e"))
            key = rsa.RSAPublicNumbers(e, n).public_key()
        else:
            continue
        found[jwk.get("kid") or key_id(key)] = key
    return found
