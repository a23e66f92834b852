"""Keyset pagination, newest first, over (created_at, id): stable while rows are added."""

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from orders.api.problems import invalid

Row = TypeVar("Row")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, last_id = base64.urlsafe_b64decode(cursor).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(last_id)
    except ValueError as exc:
        raise invalid("cursor", "not a cursor this API gave out") from exc


def _encode(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


async def newest_first(
    session: AsyncSession,
    query: SelectOfScalar[Row],
    model: Any,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Row], str | None]:
    """One page of `query` after `cursor`, and the cursor of the next page (None at the end)."""
    created_at, id_ = col(model.created_at), col(model.id)
    if cursor is not None:
        after_at, after_id = _decode(cursor)
        query = query.where(
            or_(created_at < after_at, and_(created_at == after_at, id_ < after_id))
        )
    rows = list(await session.exec(query.order_by(created_at.desc(), id_.desc()).limit(limit + 1)))
    page = rows[:limit]
    return page, _encode(page[-1]) if len(rows) > limit else None
