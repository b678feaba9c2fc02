"""the collector's queue of byte deletes: index rows go first, a blob's bytes only after the grace

A row says "the bytes at this digest may be deleted from the store after `delete_after`": queued when
the collector forgets a blob, when it finds bytes no blob row describes, and (as a hold, an hour ahead)
by a writer about to publish bytes, which its link then clears. See registry/lifecycle/collector.py.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gc_pending_deletes",
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("gc_pending_due", "gc_pending_deletes", ["delete_after"], unique=False)


def downgrade() -> None:
    op.drop_index("gc_pending_due", table_name="gc_pending_deletes")
    op.drop_table("gc_pending_deletes")
