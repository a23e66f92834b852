"""checkout tables

Revision ID: da2000014521
Revises:
Create Date: 2026-11-25 17:48:33.990445+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER
revision: str = "da2000014521"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ORDER_NUMBER_SEQ = sa.Sequence("order_number_seq", start=100_001)


def upgrade() -> None:
    # PostgreSQL numbers orders from a sequence; SQLite (the embedded demo) has none, and the
    # checkout gives the number there (orders.models.next_order_number).
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(sa.schema.CreateSequence(ORDER_NUMBER_SEQ))
    op.create_table(
        "idempotency_key",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "in_progress", "completed", name="idempotencystatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_key")),
    )
    op.create_index(
        op.f("ix_idempotency_key_created_at"), "idempotency_key", ["created_at"], unique=False
    )
    op.create_table(
        "order",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "number",
            sa.BigInteger(),
            server_default=sa.text("nextval('order_number_seq')") if postgres else None,
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "reserved",
                "paid",
                "invoiced",
                "completed",
                "cancelled",
                "failed",
                name="orderstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("customer_email", sa.String(length=254), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("shipping_name", sa.String(length=200), nullable=False),
        sa.Column("shipping_line1", sa.String(length=200), nullable=False),
        sa.Column("shipping_line2", sa.String(length=200), nullable=True),
        sa.Column("shipping_city", sa.String(length=100), nullable=False),
        sa.Column("shipping_postal_code", sa.String(length=20), nullable=False),
        sa.Column("shipping_country", sa.String(length=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.Integer(), nullable=False),
        sa.Column("tax", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("access_token_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order")),
        sa.UniqueConstraint("number", name=op.f("uq_order_number")),
    )
    op.create_index(
        op.f("ix_order_status_created_at"), "order", ["status", "created_at"], unique=False
    )
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where="published_at IS NULL",
    )
    op.create_table(
        "product",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stock_on_hand", sa.Integer(), nullable=False),
        sa.Column("stock_reserved", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "stock_reserved <= stock_on_hand", name=op.f("ck_product_stock_not_oversold")
        ),
        sa.CheckConstraint(
            "stock_reserved >= 0", name=op.f("ck_product_stock_reserved_not_negative")
        ),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_product_unit_price_not_negative")),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_product")),
    )
    op.create_table(
        "order_event",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order.id"],
            name=op.f("fk_order_event_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_event")),
        sa.UniqueConstraint("order_id", "seq", name=op.f("uq_order_event_order_id_seq")),
    )
    op.create_table(
        "order_line",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("line_total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order.id"],
            name=op.f("fk_order_line_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["sku"], ["product.sku"], name=op.f("fk_order_line_sku_product")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_line")),
        sa.UniqueConstraint("order_id", "sku", name=op.f("uq_order_line_order_id_sku")),
    )
    op.create_table(
        "payment",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("authorization_id", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "authorized",
                "captured",
                "voided",
                name="paymentstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("token_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("card_brand", sa.String(length=32), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["order.id"], name=op.f("fk_payment_order_id_order"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment")),
        sa.UniqueConstraint("authorization_id", name=op.f("uq_payment_authorization_id")),
        sa.UniqueConstraint("order_id", name=op.f("uq_payment_order_id")),
    )


def downgrade() -> None:
    op.drop_table("payment")
    op.drop_table("order_line")
    op.drop_table("order_event")
    op.drop_table("product")
    op.drop_index(
        "ix_outbox_unpublished", table_name="outbox", postgresql_where="published_at IS NULL"
    )
    op.drop_table("outbox")
    op.drop_index(op.f("ix_order_status_created_at"), table_name="order")
    op.drop_table("order")
    op.drop_index(op.f("ix_idempotency_key_created_at"), table_name="idempotency_key")
    op.drop_table("idempotency_key")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(ORDER_NUMBER_SEQ))
