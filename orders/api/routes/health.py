"""Health: `/health/live` answers from the event loop alone (is the process up and its loop
turning? a container's health check), `/health/ready` also asks the database (a load balancer
sends traffic only where it answers). The broker is reported but decides nothing: checkout goes
on while it is down (the outbox holds the work)."""

import asyncio
import contextlib

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from kombu.connection import Connection
from sqlalchemy import text

from orders.api.dependencies import SessionDep, SettingsDep
from orders.api.problems import problem_response, service_unavailable

router = APIRouter(prefix="/health", include_in_schema=False)


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_model=None)
async def ready(session: SessionDep, settings: SettingsDep) -> JSONResponse | dict[str, str]:
    timeout = settings.ready_timeout_s
    try:
        async with asyncio.timeout(timeout):
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception:  # unreachable, refused, silent: not ready, whatever the reason
        detail = f"The database did not answer within {timeout} s."
        problem = service_unavailable(detail, settings.unavailable_retry_after_s)
        return problem_response(problem, "/health/ready")
    broker = await asyncio.to_thread(broker_answers, settings.broker_url, timeout)
    return {"status": "ok", "database": "ok", "broker": "ok" if broker else "unreachable"}


def broker_answers(url: str, timeout_s: float) -> bool:
    if not url.startswith("amqp"):
        return True  # the embedded demo's file transport
    with contextlib.suppress(Exception), Connection(url, connect_timeout=timeout_s) as broker:  # type: ignore[no-untyped-call]
        broker.ensure_connection(max_retries=0, timeout=timeout_s)
        return True
    return False
