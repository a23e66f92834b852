"""product images

Revision ID: d121441d8078
Revises: 7bf4fe797e14
Create Date: 2026-11-25 18:52:49.746452+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d121441d8078"
down_revision: str | None = "7bf4fe797e14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product_image",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "processing",
                "ready",
                "failed",
                "interrupted",
                name="imagestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("original_bytes", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sku"], ["product.sku"], name=op.f("fk_product_image_sku_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_image")),
    )
    op.create_index(op.f("ix_product_image_sku"), "product_image", ["sku"], unique=False)
    op.create_table(
        "product_image_variant",
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["product_image.id"],
            name=op.f("fk_product_image_variant_image_id_product_image"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "size", name=op.f("pk_product_image_variant")),
    )


def downgrade() -> None:
    op.drop_table("product_image_variant")
    op.drop_index(op.f("ix_product_image_sku"), table_name="product_image")
    op.drop_table("product_image")
