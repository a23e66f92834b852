"""stall check indexes for cancellations and credit notes: the relay reads those still requested,
and credit notes not rendered yet, every STALL_CHECK_INTERVAL_S (the latter a partial index on
PostgreSQL)

Revision ID: 43a30f1cac54
Revises: e73d177882dd
Create Date: 2026-12-04 11:39:08.788596+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "43a30f1cac54"
down_revision: str | None = "e73d177882dd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_cancellation_status_created_at"), "cancellation", ["status", "created_at"]
    )
    op.create_index(
        "ix_credit_note_unrendered",
        "credit_note",
        ["issued_at"],
        unique=False,
        postgresql_where="pdf IS NULL",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_credit_note_unrendered", table_name="credit_note", postgresql_where="pdf IS NULL"
    )
    op.drop_index(op.f("ix_cancellation_status_created_at"), table_name="cancellation")
