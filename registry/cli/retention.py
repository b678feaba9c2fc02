"""The retention part of `registry gc`: print what the rules would delete (`--dry-run`, whether or not
they are enabled) or, with `retention.enabled`, delete it before the blobs are collected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.config import Settings

if TYPE_CHECKING:
    # Not at run time: every `registry` command imports this module, and the index loads SQLAlchemy.
    from registry.events import Dispatcher
    from registry.index import MetadataIndex


async def run_retention(index: MetadataIndex, settings: Settings, dry_run: bool, events: Dispatcher) -> None:
    from registry.lifecycle.retention import apply_retention, describe, plan_retention

    retention = settings.retention
    if not retention.rules:
        return
    if not dry_run and not retention.enabled:
        print(
            f"retention: {len(retention.rules)} rule(s), not enabled (retention.enabled): "
            "`registry gc --dry-run` shows what they would delete"
        )
        return
    plan = await plan_retention(index, settings)
    if dry_run:
        print("\n".join(describe(plan, applied=False)))
        return
    applied = await apply_retention(index, plan, events)
    print("\n".join([*describe(plan, applied=True), applied.summary()]))
