"""webhook_delivery.claim_id: deliveries to one endpoint are claimed and sent in batches, and the
endpoint's in-flight cap counts claims

Revision ID: 8f3a61c2d4e9
Revises: 5d0c7a9e3b21
Create Date: 2026-12-04 22:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8f3a61c2d4e9"
down_revision: str | None = "5d0c7a9e3b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_delivery", sa.Column("claim_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_delivery", "claim_id")
