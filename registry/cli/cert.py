"""`registry cert init`: a private CA and a server certificate, so a team can serve HTTPS in minutes.

Writes `ca.crt` (what clients trust), `ca.key` (kept to issue the next server certificate: run the command
again with the same --out and the CA is reused, so clients keep trusting it), `server.crt` and
`server.key` (what `registry serve --tls-cert/--tls-key` takes). Keys are EC P-256 and only readable by
their owner.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650


def register(commands: Any) -> None:
    cert = commands.add_parser("cert", help="TLS certificates for the registry")
    actions = cert.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser(
        "init", help="create a private CA (or reuse the one in --out) and a server certificate"
    )
    init.add_argument("--host", action="append", default=[], help="a DNS name of the server; repeatable")
    init.add_argument("--ip", action="append", default=[], help="an IP address of the server; repeatable")
    init.add_argument(
        "--out", type=Path, required=True, help="folder for ca.crt, ca.key, server.crt, server.key"
    )
    init.add_argument("--days", type=int, default=825, help="server certificate validity (default 825 days)")
    init.set_defaults(run=run_init)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write aside then rename, so a reader never sees half a file, with the mode set before any byte."""
    aside = path.with_name(path.name + ".new")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(aside, mode)
    os.replace(aside, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate_authority(out: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    """The CA in `out` if there is one; else a new one. True when new."""
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: expected an EC private key")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key, False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"registry CA {os.urandom(4).hex()}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key, True


def server_certificate(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: list[str], ips: list[str], days: int
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    names += [x509.IPAddress(address) for address in addresses]
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    common_name = hosts[0] if hosts else str(addresses[0])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def run_init(args: argparse.Namespace) -> int:
    if not args.host and not args.ip:
        raise ValueError("name the server with at least one --host or --ip")
    if args.days < 1:
        raise ValueError("--days must be positive")
    args.out.mkdir(parents=True, exist_ok=True)
    ca, ca_key, created = _certificate_authority(args.out)
    cert, key = server_certificate(ca, ca_key, args.host, args.ip, args.days)
    _write(args.out / "server.key", _key_pem(key), 0o600)
    _write(args.out / "server.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    print(f"{'created' if created else 'reused'} the CA {args.out / 'ca.crt'} (give this file to clients)")
    print(
        f"wrote {args.out / 'server.crt'} and {args.out / 'server.key'} for {', '.join(args.host + args.ip)}"
    )
    return 0
