"""The operators' API (`X-API-Key`): actions on orders that the chain could not finish."""

import hmac
import uuid

from fastapi import APIRouter, Depends, Request
from sqlalchemy import insert
from sqlmodel import select

from orders import events
from orders.dependencies import SessionDep, SettingsDep
from orders.models import Order, OrderStatus, Outbox, table, utcnow
from orders.problems import Problem, not_found
from orders.states import FULFIL_ORDER, STATUS_BEFORE, Step


async def require_ops_key(request: Request, settings: SettingsDep) -> str:
    presented = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(presented.encode(), settings.ops_api_key.encode()):
        raise Problem(
            401,
            "unauthorized",
            "API key required",
            "Send the operators' key in the X-API-Key header.",
            headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
        )
    return "ops"


router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(require_ops_key)])


@router.post("/orders/{order_id}/retry", status_code=202)
async def retry_order(order_id: uuid.UUID, session: SessionDep) -> dict[str, str]:
    """Resume a failed order from the step that failed: back to that step's starting status, a
    fresh delivery count, and the rest of the chain published through the outbox."""
    order = (
        await session.exec(select(Order).where(Order.id == order_id).with_for_update())
    ).first()
    if order is None:
        raise not_found("order with this id")
    if order.status != OrderStatus.FAILED or order.failed_step is None:
        raise Problem(
            409,
            "order-not-failed",
            "Only a failed order can be retried",
            f"Order {order_id} is {order.status}.",
        )
    step = Step(order.failed_step)
    order.status = STATUS_BEFORE[step]
    order.failed_step, order.failure_reason = None, None
    order.step, order.step_attempts = None, 0
    order.version += 1
    order.updated_at = utcnow()
    session.add(order)
    await session.flush()
    await events.record(session, order_id, "order.retry_requested", {"step": step})
    await session.exec(
        insert(table(Outbox)).values(
            kind=FULFIL_ORDER,
            payload={"order_id": str(order_id), "from_step": step},
            created_at=utcnow(),
        )
    )
    await session.commit()
    return {"id": str(order_id), "status": order.status, "resumed_from": step}
