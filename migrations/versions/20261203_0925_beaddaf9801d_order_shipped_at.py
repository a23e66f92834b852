"""order shipped at: when the warehouse confirmed the shipment that consumed the reservation

Revision ID: beaddaf9801d
Revises: 49d014cae8a6
Create Date: 2026-12-03 09:25:46.526160+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "beaddaf9801d"
down_revision: str | None = "49d014cae8a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("order", sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("order", "shipped_at")
