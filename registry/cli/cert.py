"""`registry cert init`: a private CA and a server certificate, so a team can serve HTTPS in minutes.

Writes `ca.crt` (what clients trust), `ca.key` (kept to issue the next server certificate: run the command
again with the same --out and the CA is reused, so clients keep trusting it), `server.crt` and
`server.key` (what `registry serve --tls-cert/--tls-key` takes). Keys are EC P-256 and only readable by
their owner.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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


def run_init(args: argparse.Namespace) -> int:
    from registry.auth.certificates import issue  # cryptography loads only for this command

    if not args.host and not args.ip:
        raise ValueError("name the server with at least one --host or --ip")
    if args.days < 1:
        raise ValueError("--days must be positive")
    created = issue(args.out, args.host, args.ip, args.days)
    print(f"{'created' if created else 'reused'} the CA {args.out / 'ca.crt'} (give this file to clients)")
    print(
        f"wrote {args.out / 'server.crt'} and {args.out / 'server.key'} for {', '.join(args.host + args.ip)}"
    )
    return 0
