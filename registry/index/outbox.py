"""The webhook outbox in SQL: events stored beside the change they report, deliveries claimed per endpoint.

A delivery row says one endpoint is owed one event. Workers of every replica claim rows with a lease
(`claimed_until`): on PostgreSQL under `FOR UPDATE SKIP LOCKED`, so two replicas never take the same
row; on SQLite every write transaction holds the database's one write lock, which serialises claims.
A claimed row is the oldest one still owed in its repository, so an endpoint receives a repository's
events in order: event n+1 waits until n is delivered. A sent delivery is deleted; the event goes with
its last delivery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from registry.index.base import Delivery, DeliveryState, OutboxEntry
from registry.index.models import EventDelivery, OutboxEvent, utcnow

Transaction = Callable[..., Awaitable[Any]]
PENDING, FAILED = "pending", "failed"
# Kept with a delivery refused by a full backlog, so `registry events` says why it waits.
BACKLOG_FULL = "the endpoint's backlog was full: retry with `registry events retry`"

_earlier = aliased(EventDelivery)
_CLAIMABLE = (
    select(EventDelivery.event_id)
    .where(
        EventDelivery.endpoint == bindparam("to_endpoint"),
        EventDelivery.state == PENDING,
        EventDelivery.next_attempt_at <= bindparam("now"),
        or_(EventDelivery.claimed_until.is_(None), EventDelivery.claimed_until < bindparam("now")),
        ~exists().where(
            _earlier.endpoint == EventDelivery.endpoint,
            _earlier.repository == EventDelivery.repository,
            _earlier.state == PENDING,
            _earlier.event_id < EventDelivery.event_id,
        ),
    )
    .order_by(EventDelivery.event_id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=EventDelivery)
)
_CLAIM = (
    update(EventDelivery)
    .where(
        EventDelivery.endpoint == bindparam("to_endpoint"),
        EventDelivery.event_id.in_(bindparam("ids", expanding=True)),
    )
    .values(claimed_by=bindparam("claimant"), claimed_until=bindparam("until"))
)
_CLAIMED = (
    select(
        EventDelivery.event_id,
        EventDelivery.endpoint,
        EventDelivery.repository,
        OutboxEvent.payload,
        EventDelivery.attempts,
    )
    .join(OutboxEvent, OutboxEvent.id == EventDelivery.event_id)
    .where(
        EventDelivery.endpoint == bindparam("to_endpoint"),
        EventDelivery.event_id.in_(bindparam("ids", expanding=True)),
    )
    .order_by(EventDelivery.event_id)
)
_MINE = and_(
    EventDelivery.event_id == bindparam("of_event"),
    EventDelivery.endpoint == bindparam("to_endpoint"),
    EventDelivery.claimed_by == bindparam("claimant"),
)
_ORPHANED = delete(OutboxEvent).where(
    OutboxEvent.id == bindparam("of_event"),
    ~exists().where(EventDelivery.event_id == OutboxEvent.id),
)
_PENDING_COUNT = select(func.count()).select_from(
    select(EventDelivery.event_id)
    .where(EventDelivery.endpoint == bindparam("to_endpoint"), EventDelivery.state == PENDING)
    .limit(bindparam("limit"))
    .subquery()
)


def write_entries(conn: Connection, entries: Sequence[OutboxEntry]) -> None:
    """Store events and the deliveries they owe, in the caller's transaction (the change's own).

    An endpoint whose backlog is full gets the delivery as failed: kept and listed, but not sent until
    an operator retries it, so a dead receiver cannot make the table grow without end in the queue.
    """
    room: dict[str, int] = {}
    now = utcnow()
    for entry in entries:
        if not entry.endpoints:
            continue
        event_id = conn.scalar(
            insert(OutboxEvent)
            .values(repository=entry.repository, payload=entry.payload, created_at=now)
            .returning(OutboxEvent.id)
        )
        rows = []
        for endpoint, backlog in entry.endpoints:
            if endpoint not in room:
                room[endpoint] = backlog - conn.scalar(
                    _PENDING_COUNT, {"to_endpoint": endpoint, "limit": backlog}
                )
            full = room[endpoint] <= 0
            room[endpoint] -= 1
            rows.append(
                {
                    "event_id": event_id,
                    "endpoint": endpoint,
                    "repository": entry.repository,
                    "state": FAILED if full else PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": BACKLOG_FULL if full else None,
                }
            )
        conn.execute(insert(EventDelivery), rows)


class SQLOutbox:
    """The `Outbox` over the index's transactions (see SQLIndex)."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    async def record(self, entries: Sequence[OutboxEntry]) -> None:
        if any(entry.endpoints for entry in entries):
            await self._transaction(write_entries, entries)

    async def claim(self, endpoint: str, claimant: str, lease: float, limit: int) -> list[Delivery]:
        return await self._transaction(_claim, endpoint, claimant, lease, limit)

    async def delivered(self, delivery: Delivery, claimant: str) -> None:
        await self._transaction(_delivered, delivery, claimant)

    async def postpone(self, delivery: Delivery, claimant: str, error: str, delay: float) -> None:
        await self._transaction(_postpone, delivery, claimant, error, delay)

    async def owed(self, states: Sequence[str], limit: int) -> list[DeliveryState]:
        return await self._transaction(_owed, tuple(states), limit)

    async def retry(self, endpoint: str | None, event_ids: Sequence[int]) -> int:
        return await self._transaction(_retry, endpoint, tuple(event_ids))

    async def counts(self) -> dict[tuple[str, str], int]:
        return await self._transaction(_counts)


def _claim(conn: Connection, endpoint: str, claimant: str, lease: float, limit: int) -> list[Delivery]:
    now = utcnow()
    ids = list(conn.scalars(_CLAIMABLE, {"to_endpoint": endpoint, "now": now, "limit": limit}))
    if not ids:
        return []
    until = now + timedelta(seconds=lease)
    conn.execute(_CLAIM, {"to_endpoint": endpoint, "ids": ids, "claimant": claimant, "until": until})
    return [Delivery(*row) for row in conn.execute(_CLAIMED, {"to_endpoint": endpoint, "ids": ids})]


def _delivered(conn: Connection, delivery: Delivery, claimant: str) -> None:
    params = {"of_event": delivery.event_id, "to_endpoint": delivery.endpoint, "claimant": claimant}
    conn.execute(delete(EventDelivery).where(_MINE), params)
    conn.execute(_ORPHANED, params)


def _postpone(conn: Connection, delivery: Delivery, claimant: str, error: str, delay: float) -> None:
    conn.execute(
        update(EventDelivery)
        .where(_MINE)
        .values(
            attempts=EventDelivery.attempts + 1,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            claimed_by=None,
            claimed_until=None,
            last_error=error[:1000],
        ),
        {"of_event": delivery.event_id, "to_endpoint": delivery.endpoint, "claimant": claimant},
    )


def _owed(conn: Connection, states: tuple[str, ...], limit: int) -> list[DeliveryState]:
    rows = conn.execute(
        select(
            EventDelivery.event_id,
            EventDelivery.endpoint,
            EventDelivery.repository,
            EventDelivery.state,
            EventDelivery.attempts,
            EventDelivery.next_attempt_at,
            EventDelivery.last_error,
            OutboxEvent.payload,
        )
        .join(OutboxEvent, OutboxEvent.id == EventDelivery.event_id)
        .where(EventDelivery.state.in_(states))
        .order_by(EventDelivery.endpoint, EventDelivery.event_id)
        .limit(limit)
    )
    return [DeliveryState(*row) for row in rows]


def _retry(conn: Connection, endpoint: str | None, event_ids: tuple[int, ...]) -> int:
    # Claims are left alone: a delivery being sent right now finishes (or fails) as it would have.
    statement = update(EventDelivery).values(state=PENDING, next_attempt_at=utcnow())
    if endpoint is not None:
        statement = statement.where(EventDelivery.endpoint == endpoint)
    if event_ids:
        statement = statement.where(EventDelivery.event_id.in_(event_ids))
    return conn.execute(statement).rowcount


def _counts(conn: Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        select(EventDelivery.endpoint, EventDelivery.state, func.count()).group_by(
            EventDelivery.endpoint, EventDelivery.state
        )
    )
    return {(endpoint, state): count for endpoint, state, count in rows}
