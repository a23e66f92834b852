"""cancellations, refunds and credit notes: one row per operator request (void or refund),
credit notes numbered in a series of their own; statuses long enough for partially_refunded

Revision ID: f198fa65b463
Revises: beaddaf9801d
Create Date: 2026-12-03 17:20:28.473247+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f198fa65b463"
down_revision: str | None = "beaddaf9801d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_note_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_note_counter")),
    )
    op.create_table(
        "cancellation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("void", "refund", name="cancellationkind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum("requested", "done", name="cancellationstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("whole_order", sa.Boolean(), nullable=False),
        sa.Column(
            "lines",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("gateway_refund_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order.id"],
            name=op.f("fk_cancellation_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellation")),
        sa.UniqueConstraint(
            "order_id", "idempotency_key", name=op.f("uq_cancellation_order_id_idempotency_key")
        ),
        sa.UniqueConstraint("order_id", "seq", name=op.f("uq_cancellation_order_id_seq")),
    )
    op.create_index(op.f("ix_cancellation_order_id"), "cancellation", ["order_id"], unique=False)
    op.create_table(
        "credit_note",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cancellation_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("invoice_number", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cancellation_id"],
            ["cancellation.id"],
            name=op.f("fk_credit_note_cancellation_id_cancellation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order.id"],
            name=op.f("fk_credit_note_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_note")),
        sa.UniqueConstraint("cancellation_id", name=op.f("uq_credit_note_cancellation_id")),
        sa.UniqueConstraint("number", name=op.f("uq_credit_note_number")),
    )
    op.create_index(op.f("ix_credit_note_order_id"), "credit_note", ["order_id"], unique=False)
    op.execute("INSERT INTO credit_note_counter (id, last_number) VALUES (1, 0)")
    # "partially_refunded" needs more than 16 characters. SQLite does not enforce a VARCHAR's
    # length (and cannot alter a column's type): nothing to do there.
    if op.get_bind().dialect.name != "sqlite":
        for table in ("order", "payment"):
            op.alter_column(
                table,
                "status",
                existing_type=sa.VARCHAR(length=16),
                type_=sa.String(length=24),
                existing_nullable=False,
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table in ("order", "payment"):
            op.alter_column(
                table,
                "status",
                existing_type=sa.String(length=24),
                type_=sa.VARCHAR(length=16),
                existing_nullable=False,
            )
    op.drop_index(op.f("ix_credit_note_order_id"), table_name="credit_note")
    op.drop_table("credit_note")
    op.drop_index(op.f("ix_cancellation_order_id"), table_name="cancellation")
    op.drop_table("cancellation")
    op.drop_table("credit_note_counter")
