"""bulk stock imports: import_job (an uploaded catalog CSV and its progress), import_row_error
(the rows it skipped), and shop events without an order (order_event.order_id and seq nullable:
`catalog.imported`), which wake no live stream

Revision ID: e73d177882dd
Revises: 5d0c3e1a9b27
Create Date: 2026-12-04 09:50:59.810645+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e73d177882dd"
down_revision: str | None = "5d0c3e1a9b27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("spool_name", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "done",
                "cancelled",
                "failed",
                name="importstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("lines_done", sa.BigInteger(), nullable=False),
        sa.Column("rows_done", sa.BigInteger(), nullable=False),
        sa.Column("rows_failed", sa.BigInteger(), nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_job")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_import_job_idempotency_key")),
    )
    op.create_index(
        op.f("ix_import_job_sha256_created_at"),
        "import_job",
        ["sha256", "created_at"],
        unique=False,
    )
    op.create_table(
        "import_row_error",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["import_job.id"],
            name=op.f("fk_import_row_error_job_id_import_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_row_error")),
    )
    op.create_index(
        op.f("ix_import_row_error_job_id"), "import_row_error", ["job_id"], unique=False
    )
    with op.batch_alter_table("order_event") as batch:  # SQLite rebuilds the table
        batch.alter_column("order_id", existing_type=sa.Uuid(), nullable=True)
        batch.alter_column("seq", existing_type=sa.Integer(), nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        _notify_only_order_events("WHEN (NEW.order_id IS NOT NULL)")


def _notify_only_order_events(when: str) -> None:
    op.execute("DROP TRIGGER order_event_notify ON order_event")
    op.execute(
        f"CREATE TRIGGER order_event_notify AFTER INSERT ON order_event FOR EACH ROW {when}"
        " EXECUTE FUNCTION order_event_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _notify_only_order_events("")
    op.execute("DELETE FROM order_event WHERE order_id IS NULL")
    with op.batch_alter_table("order_event") as batch:
        batch.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("order_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_index(op.f("ix_import_row_error_job_id"), table_name="import_row_error")
    op.drop_table("import_row_error")
    op.drop_index(op.f("ix_import_job_sha256_created_at"), table_name="import_job")
    op.drop_table("import_job")
