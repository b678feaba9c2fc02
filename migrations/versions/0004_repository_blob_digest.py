"""repositories holding a blob: an index on repository_blobs.digest

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 15:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.create_index("repository_blob_digest", ["digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.drop_index("repository_blob_digest")
