"""the webhook outbox: events written with the change they report, and their deliveries per endpoint

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("event_id", _ID, sa.ForeignKey("event_outbox.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("endpoint", sa.String(length=255), primary_key=True),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'failed')", name="event_delivery_state"),
    )
    op.create_index(
        "event_delivery_queue", "event_deliveries", ["endpoint", "state", "repository", "event_id"]
    )


def downgrade() -> None:
    op.drop_index("event_delivery_queue", table_name="event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_table("event_outbox")
