"""`registry events`: the webhook deliveries still owed (pending or failed), and retrying them now."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from registry.cli.options import add_settings_arguments, settings_from
from registry.cli.prepare import prepare

LIST_LIMIT = 1000


def register(commands: Any) -> None:
    events = commands.add_parser("events", help="webhook deliveries still owed: list them, retry them")
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="pending and failed deliveries, oldest first per endpoint")
    add_settings_arguments(listing)
    listing.add_argument("--failed", action="store_true", help="only those refused by a full backlog")
    listing.add_argument("--json", action="store_true", help="one JSON object a line, with the event")
    listing.set_defaults(run=run_list)
    retry = actions.add_parser("retry", help="send failed (and waiting) deliveries at the next round")
    add_settings_arguments(retry)
    retry.add_argument("--endpoint", metavar="NAME", help="only this endpoint's deliveries")
    retry.add_argument("event_ids", metavar="EVENT", nargs="*", type=int, help="only these events (ids)")
    retry.set_defaults(run=run_retry)


def _with_outbox(args: argparse.Namespace, work: Any) -> Any:
    from registry.index import SQLIndex

    settings = settings_from(args)
    prepare(settings)
    index = SQLIndex(settings.index_url)

    async def run() -> Any:
        await index.open()
        try:
            return await work(index.outbox)
        finally:
            await index.close()

    return asyncio.run(run())


def run_list(args: argparse.Namespace) -> int:
    states = ("failed",) if args.failed else ("pending", "failed")
    owed = _with_outbox(args, lambda outbox: outbox.owed(states, LIST_LIMIT))
    for row in owed:
        if args.json:
            fields = {
                "event": row.event_id,
                "endpoint": row.endpoint,
                "repository": row.repository,
                "state": row.state,
                "attempts": row.attempts,
                "next_attempt": row.next_attempt_at.isoformat(),
                "last_error": row.last_error,
                "payload": json.loads(row.payload),
            }
            print(json.dumps(fields))
        else:
            action = json.loads(row.payload).get("action", "")
            print(
                f"{row.event_id}\t{row.endpoint}\t{row.state}\t{row.attempts}\t{row.repository}\t{action}\t"
                f"{row.last_error or ''}"
            )
    if not args.json:
        print(
            f"{len(owed)} deliveries owed"
            + (f" (the first {LIST_LIMIT} shown)" if len(owed) == LIST_LIMIT else "")
        )
    return 0


def run_retry(args: argparse.Namespace) -> int:
    count = _with_outbox(args, lambda outbox: outbox.retry(args.endpoint, args.event_ids))
    print(f"{count} deliveries will be sent at the next round of a running server")
    return 0
