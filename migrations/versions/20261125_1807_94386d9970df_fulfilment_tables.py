"""fulfilment tables

Revision ID: 94386d9970df
Revises: da2000014521
Create Date: 2026-11-25 18:07:00.066142+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER
revision: str = "94386d9970df"
down_revision: str | None = "da2000014521"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OUTBOX_NOTIFY_FUNCTION = """
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "invoice_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_counter")),
    )
    op.execute("INSERT INTO invoice_counter (id, last_number) VALUES (1, 0)")
    op.create_table(
        "invoice",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["order.id"], name=op.f("fk_invoice_order_id_order"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice")),
        sa.UniqueConstraint("number", name=op.f("uq_invoice_number")),
        sa.UniqueConstraint("order_id", name=op.f("uq_invoice_order_id")),
    )
    op.create_table(
        "stock_reservation",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["order.id"],
            name=op.f("fk_stock_reservation_order_id_order"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sku"], ["product.sku"], name=op.f("fk_stock_reservation_sku_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_reservation")),
        sa.UniqueConstraint("order_id", "sku", name=op.f("uq_stock_reservation_order_id_sku")),
    )
    op.add_column(
        "order", sa.Column("tax_rate_bps", sa.Integer(), nullable=False, server_default="0")
    )
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("order", "tax_rate_bps", server_default=None)
    op.add_column("order", sa.Column("step", sa.String(length=32), nullable=True))
    op.add_column(
        "order", sa.Column("step_attempts", sa.Integer(), nullable=False, server_default="0")
    )
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("order", "step_attempts", server_default=None)
    op.add_column("order", sa.Column("failed_step", sa.String(length=32), nullable=True))
    op.add_column("order", sa.Column("failure_reason", sa.String(length=1000), nullable=True))
    op.add_column(
        "order", sa.Column("warehouse_synced_at", sa.DateTime(timezone=True), nullable=True)
    )
    if op.get_bind().dialect.name == "postgresql":
        # Wakes the relay the moment an outbox row commits; it still polls as a fallback.
        op.execute(OUTBOX_NOTIFY_FUNCTION)
        op.execute(
            "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox"
            " FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER outbox_notify ON outbox")
        op.execute("DROP FUNCTION outbox_notify()")
    op.drop_column("order", "warehouse_synced_at")
    op.drop_column("order", "failure_reason")
    op.drop_column("order", "failed_step")
    op.drop_column("order", "step_attempts")
    op.drop_column("order", "step")
    op.drop_column("order", "tax_rate_bps")
    op.drop_table("stock_reservation")
    op.drop_table("invoice")
    op.drop_table("invoice_counter")
