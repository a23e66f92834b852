"""Product images: upload (202, resized after the response in a process pool), status, variants."""

import asyncio
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orders.api.auth import require_ops_key
from orders.api.dependencies import AuditDep, RegistryDep, SessionDep, SettingsDep
from orders.api.problems import Problem, not_found
from orders.api.schemas import SKU_PATTERN
from orders.images import ACCEPTED_TYPES, VARIANT_TYPE, NotAnImage, resize_variants
from orders.models import ImageStatus, Product, ProductImage, ProductImageVariant, table, utcnow

log = logging.getLogger(__name__)
SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]
router = APIRouter(tags=["product images"])


async def mark_interrupted(sessions: async_sessionmaker[AsyncSession]) -> int:
    """At start-up: images a previous process was resizing when it stopped will never finish."""
    images = table(ProductImage)
    async with sessions() as session:
        result = await session.exec(
            update(images)
            .where(images.c.status == ImageStatus.PROCESSING)
            .values(status=ImageStatus.INTERRUPTED, updated_at=utcnow())
        )
        await session.commit()
    return int(result.rowcount)


async def _set_status(
    sessions: async_sessionmaker[AsyncSession],
    image_id: uuid.UUID,
    status: ImageStatus,
    error: str | None = None,
) -> None:
    images = table(ProductImage)
    async with sessions() as session:
        await session.exec(
            update(images)
            .where(images.c.id == image_id)
            .values(status=status, error=error, updated_at=utcnow())
        )
        await session.commit()


async def resize_in_pool(
    app: Any, image_id: uuid.UUID, data: bytes, sizes: tuple[int, ...]
) -> None:
    sessions = app.state.sessions
    loop = asyncio.get_running_loop()
    try:
        variants = await loop.run_in_executor(app.state.image_pool, resize_variants, data, sizes)
    except NotAnImage as exc:
        await _set_status(sessions, image_id, ImageStatus.FAILED, f"not a readable image: {exc}")
        return
    async with sessions() as session:
        await session.exec(
            insert(table(ProductImageVariant)).values(
                [
                    {
                        "image_id": image_id,
                        "size": size,
                        "width": width,
                        "height": height,
                        "content_type": VARIANT_TYPE,
                        "data": webp,
                    }
                    for size, width, height, webp in variants
                ]
            )
        )
        await session.commit()
    await _set_status(sessions, image_id, ImageStatus.READY)


@router.post(
    "/products/{sku}/images",
    status_code=202,
    dependencies=[Depends(require_ops_key)],
    responses={413: {"description": "Too large"}, 415: {"description": "Not an accepted type"}},
)
async def upload_image(
    sku: SkuPath,
    file: UploadFile,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    registry: RegistryDep,
    audit: AuditDep,
) -> JSONResponse:
    if await session.get(Product, sku) is None:
        raise not_found("product with this SKU")
    if file.content_type not in ACCEPTED_TYPES:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported image type",
            f"file: send one of {', '.join(ACCEPTED_TYPES)}",
            errors=[{"field": "file", "message": f"{file.content_type} is not accepted"}],
        )
    data = await file.read()
    image = ProductImage(sku=sku, content_type=file.content_type, original_bytes=len(data))
    session.add(image)
    await session.commit()
    sizes = tuple(int(size) for size in settings.image_sizes.split(","))
    if not registry.spawn(resize_in_pool(request.app, image.id, data, sizes), name="resize"):
        await _set_status(request.app.state.sessions, image.id, ImageStatus.FAILED, "server busy")
    audit("product_image.uploaded", target=f"{sku}/{image.id}")
    location = f"/products/{sku}/images/{image.id}"
    return JSONResponse(
        {"id": str(image.id), "status": image.status, "status_url": location},
        202,
        headers={"location": location, "retry-after": "1"},
    )


async def image_or_404(sku: SkuPath, image_id: uuid.UUID, session: SessionDep) -> ProductImage:
    image = await session.get(ProductImage, image_id)
    if image is None or image.sku != sku:
        raise not_found("image of this product")
    return image


ImageDep = Annotated[ProductImage, Depends(image_or_404)]


@router.get("/products/{sku}/images/{image_id}")
async def image_status(image: ImageDep, session: SessionDep) -> dict[str, Any]:
    variants = await session.exec(
        select(ProductImageVariant.size, ProductImageVariant.width, ProductImageVariant.height)
        .where(ProductImageVariant.image_id == image.id)
        .order_by(col(ProductImageVariant.size))
    )
    base = f"/products/{image.sku}/images/{image.id}"
    return {
        "id": str(image.id),
        "sku": image.sku,
        "status": image.status,
        "error": image.error,
        "variants": [
            {"size": s, "width": w, "height": h, "url": f"{base}/{s}"} for s, w, h in variants
        ],
    }


@router.get(
    "/products/{sku}/images/{image_id}/{size}",
    response_class=Response,
    responses={200: {"description": "The variant", "content": {VARIANT_TYPE: {}}}},
)
async def image_variant(image: ImageDep, size: int, session: SessionDep) -> Response:
    variant = await session.get(ProductImageVariant, (image.id, size))
    if variant is None:
        raise not_found("variant of this size")
    return Response(
        variant.data,
        media_type=variant.content_type,
        headers={"cache-control": "public, max-age=31536000, immutable"},
    )
