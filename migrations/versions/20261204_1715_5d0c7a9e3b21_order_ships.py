"""order.ships: whether a warehouse ships the order (one was configured when its stock was
reserved), so that the storefront's stream of a completed order waits for `order.shipped`

Revision ID: 5d0c7a9e3b21
Revises: b51c0e7d2a64
Create Date: 2026-12-04 17:15:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d0c7a9e3b21"
down_revision: str | None = "b51c0e7d2a64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Orders reserved before: those the warehouse heard of ship through it.
    op.add_column("order", sa.Column("ships", sa.Boolean(), server_default="false", nullable=False))
    op.execute('UPDATE "order" SET ships = true WHERE warehouse_synced_at IS NOT NULL')


def downgrade() -> None:
    op.drop_column("order", "ships")
