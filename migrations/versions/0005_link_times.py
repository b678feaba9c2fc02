"""repository links remember when they were last made; manifest references are found by digest

Garbage collection protects a blob linked into a repository only for a grace period after its last push
or mount (a push in progress has not written its manifest yet), and asks, per blob, whether any manifest
references it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.alter_column("created_at", new_column_name="linked_at")
    with op.batch_alter_table("manifest_references", schema=None) as batch_op:
        batch_op.create_index("manifest_reference_digest", ["digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("manifest_references", schema=None) as batch_op:
        batch_op.drop_index("manifest_reference_digest")
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.alter_column("linked_at", new_column_name="created_at")
