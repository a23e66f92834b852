"""Product images and their resized variants."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from orders.models.base import status_column, timestamp


class ImageStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the API process stopped while it was resizing


class ProductImage(SQLModel, table=True):
    __tablename__ = "product_image"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    sku: str = Field(foreign_key="product.sku", max_length=64, index=True)
    status: ImageStatus = Field(default=ImageStatus.PROCESSING, sa_type=status_column(ImageStatus))
    content_type: str = Field(max_length=32)
    original_bytes: int
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = timestamp()
    updated_at: datetime = timestamp()


class ProductImageVariant(SQLModel, table=True):
    __tablename__ = "product_image_variant"

    image_id: uuid.UUID = Field(
        foreign_key="product_image.id", ondelete="CASCADE", primary_key=True
    )
    size: int = Field(primary_key=True)
    width: int
    height: int
    content_type: str = Field(max_length=32)
    data: bytes = Field(sa_type=LargeBinary)
