"""`registry user ...` and `registry group ...`: the people and CI systems that may log in.

They open the same index as `serve` (same --config/--data-dir/--database-url) and may run while it
serves: a running server sees a change at the next login (within a minute for cached basic-auth
credentials). Passwords come from a prompt or, for scripts, one line on standard input; a service
account gets a generated secret, shown once and never stored in the clear.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from registry.auth.identity import validate_user_name
from registry.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, new_secret
from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import prepare
from registry.cli.prompts import require_terminal

if TYPE_CHECKING:
    from registry.index.base import UserDirectory


def register(commands: Any) -> None:
    user = commands.add_parser("user", help="manage users and service accounts")
    users = user.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = users.add_parser("add", help="add a user (or, with --service-account, a CI account)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--group", action="append", default=[], help="a group to join (made if new); repeatable")
    add.add_argument(
        "--service-account", action="store_true", help="generate a long random secret and print it once"
    )
    add.set_defaults(run=_run(_user_add))

    passwd = users.add_parser("passwd", help="set a user's password (a service account gets a new secret)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd.set_defaults(run=_run(_user_passwd))

    rm = users.add_parser("rm", help="remove a user")
    rm.add_argument("name")
    rm.set_defaults(run=_run(_user_rm))

    listing = users.add_parser("list", help="list users, their kind and groups")
    listing.set_defaults(run=_run(_user_list))

    group = commands.add_parser("group", help="manage groups of users")
    groups = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, handler, help_text in (
        ("add", _group_add, "add a group"),
        ("rm", _group_rm, "remove a group (its members stay users)"),
    ):
        parser = groups.add_parser(action, help=help_text)
        parser.add_argument("name")
        parser.set_defaults(run=_run(handler))
    groups.add_parser("list", help="list groups and their members").set_defaults(run=_run(_group_list))
    for action, handler, help_text in (
        ("add-member", _member_add, "put a user in a group"),
        ("rm-member", _member_rm, "take a user out of a group"),
    ):
        parser = groups.add_parser(action, help=help_text)
        parser.add_argument("group")
        parser.add_argument("user")
        parser.set_defaults(run=_run(handler))

    for parser in (add, passwd, rm, listing, *groups.choices.values()):
        add_settings_arguments(parser)


def _run(action: Callable[[UserDirectory, argparse.Namespace], Awaitable[None]]) -> Callable[..., int]:
    """Bring the schema up to date, then run one directory action on the configured database."""

    def run(args: argparse.Namespace) -> int:
        settings = settings_from(args)
        prepare(settings)

        async def main() -> None:
            from registry.index.users import SQLUserDirectory

            users = SQLUserDirectory(settings.index_url)
            try:
                await action(users, args)
            finally:
                await users.close()

        asyncio.run(main())
        return 0

    return run


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        require_terminal("for the password", "--password-stdin and write it to standard input")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("the passwords differ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


def _secret_or_password(args: argparse.Namespace, service_account: bool) -> str:
    if not service_account:
        return _password(args)
    secret = new_secret()
    print("the service account's secret, shown only this once:", file=sys.stderr)
    print(secret)
    return secret


async def _user_add(users: UserDirectory, args: argparse.Namespace) -> None:
    name = validate_user_name(args.name)
    for group in args.group:
        validate_user_name(group)
    if await users.get_user(name) is not None:
        raise ValueError(f"user {name} exists already")
    secret = _secret_or_password(args, args.service_account)
    await users.add_user(name, hash_password(secret), args.service_account)
    existing = await users.list_groups()
    for group in args.group:
        if group not in existing:
            await users.add_group(group)
        await users.add_member(group, name)


async def _user_passwd(users: UserDirectory, args: argparse.Namespace) -> None:
    record = await users.get_user(args.name)
    if record is None:
        raise ValueError(f"no such user: {args.name}")
    await users.set_password(args.name, hash_password(_secret_or_password(args, record.service_account)))


async def _user_rm(users: UserDirectory, args: argparse.Namespace) -> None:
    await users.remove_user(args.name)


async def _user_list(users: UserDirectory, _args: argparse.Namespace) -> None:
    for record in await users.list_users():
        kind = "service" if record.service_account else "user"
        print(f"{record.name}\t{kind}\t{','.join(record.groups)}")


async def _group_add(users: UserDirectory, args: argparse.Namespace) -> None:
    await users.add_group(validate_user_name(args.name))


async def _group_rm(users: UserDirectory, args: argparse.Namespace) -> None:
    await users.remove_group(args.name)


async def _group_list(users: UserDirectory, _args: argparse.Namespace) -> None:
    for group, members in (await users.list_groups()).items():
        print(f"{group}\t{','.join(members)}")


async def _member_add(users: UserDirectory, args: argparse.Namespace) -> None:
    await users.add_member(args.group, args.user)


async def _member_rm(users: UserDirectory, args: argparse.Namespace) -> None:
    await users.remove_member(args.group, args.user)
