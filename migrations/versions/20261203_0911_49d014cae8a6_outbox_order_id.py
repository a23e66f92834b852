"""outbox order id: the order an outbox row is about, so the relay can find orders that stalled
(no message for them waiting or recently sent)

Revision ID: 49d014cae8a6
Revises: d121441d8078
Create Date: 2026-12-03 09:11:04.501681+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "49d014cae8a6"
down_revision: str | None = "d121441d8078"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("order_id", sa.Uuid(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # every message so far names its order
        op.execute("UPDATE outbox SET order_id = (payload->>'order_id')::uuid")
    op.create_index(op.f("ix_outbox_order_id"), "outbox", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_order_id"), table_name="outbox")
    op.drop_column("outbox", "order_id")
