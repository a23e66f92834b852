"""Cancelling an order after checkout (`X-API-Key`): the whole order or some lines; a void before
capture, a refund with a credit note after. Answered with 202: the gateway is called after, by a
worker (orders.refunds has the rules)."""

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import Field, StrictInt

from orders import idempotency
from orders.api.auth import require_ops_key
from orders.api.dependencies import AuditDep, IdempotencyKeyDep, SessionDep, SettingsDep
from orders.api.problems import Problem, not_found
from orders.api.schemas import Description, Sku, StrictModel
from orders.db import run
from orders.idempotency import KeyReused
from orders.models import Cancellation
from orders.refunds import CancelKeyReused, CancelRefused, CancelRequest, request_cancellation

router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(require_ops_key)])


class RefundLine(StrictModel):
    sku: Sku
    quantity: StrictInt = Field(ge=1)


class CancelOrder(StrictModel):
    lines: list[RefundLine] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Refund just these lines (a completed order); leave out for the whole order.",
    )
    reason: Description | None = None


class CancellationPublic(StrictModel):
    id: uuid.UUID
    order_id: uuid.UUID
    kind: str = Field(description="`void` (before capture) or `refund`")
    status: str = Field(description="`requested`, then `done` once the gateway confirmed it")
    whole_order: bool
    lines: list[dict[str, Any]]
    amount: int = Field(description="Minor units refunded; 0 for a void")
    replayed: bool = False

    @classmethod
    def of(cls, cancellation: Cancellation, replayed: bool) -> "CancellationPublic":
        return cls(
            id=cancellation.id,
            order_id=cancellation.order_id,
            kind=cancellation.kind,
            status=cancellation.status,
            whole_order=cancellation.whole_order,
            lines=[{"sku": k, "quantity": q} for k, q in sorted(cancellation.lines.items())],
            amount=cancellation.amount,
            replayed=replayed,
        )


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    response_model=CancellationPublic,
    responses={
        409: {"description": "The order cannot be cancelled now, or is already"},
        422: {"description": "Invalid lines, more than is left to refund, or a reused key"},
    },
)
async def cancel_order(
    order_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    audit: AuditDep,
    response: Response,
    key: IdempotencyKeyDep,
    body: CancelOrder | None = None,
) -> CancellationPublic:
    """Cancel the whole order at any stage, or refund some of a completed order's lines. Before
    capture the card's hold is released; after it the money is refunded and a credit note
    issued. The same Idempotency-Key again answers the same cancellation."""
    body = body or CancelOrder()
    lines = None
    if body.lines is not None:
        lines = {}
        for i, line in enumerate(body.lines):
            if line.sku in lines:
                message = f"{line.sku} appears twice; send one line per SKU"
                raise Problem(
                    422,
                    "validation-error",
                    "Your request is not valid",
                    f"lines[{i}].sku: {message}.",
                    errors=[{"field": f"lines[{i}].sku", "message": message}],
                )
            lines[line.sku] = line.quantity
    request = CancelRequest(
        key, idempotency.request_hash(body.model_dump(mode="json")), lines, body.reason
    )
    try:
        found = await run(
            session, request_cancellation, order_id, request, settings.public_base_url
        )
    except CancelKeyReused as reused:
        raise KeyReused(key) from reused
    except CancelRefused as refused:
        errors = [{"field": refused.field, "message": refused.detail}] if refused.field else None
        retry = {"Retry-After": "5"} if refused.code == "order-busy" else None
        raise Problem(
            refused.status,
            refused.code,
            refused.title,
            refused.detail,
            errors=errors,
            headers=retry,
        ) from refused
    if found is None:
        raise not_found("order with this id")
    cancellation, replayed = found
    answer = CancellationPublic.of(cancellation, replayed)
    if not replayed:
        await session.commit()
        audit("order.cancel_requested", order_id=order_id, detail={"kind": cancellation.kind})
    response.headers["location"] = f"/ops/orders/{order_id}"
    return answer
