"""Work done after the response, in the API process (FastAPI BackgroundTasks): the audit log and
the order-received email. Lost if the process dies in between: acceptable for these two, which is
why they are here and not in Celery. Failures are logged and counted, never raised to the client."""

import logging
import uuid
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from prometheus_client import Counter
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from orders.api.config import ApiSettings
from orders.models import AuditLog, table, utcnow

log = logging.getLogger(__name__)

EMAILS = Counter("orders_email_total", "Order-received emails", ["outcome"])
AUDIT_FAILURES = Counter("orders_audit_failures_total", "Audit rows that could not be written")


async def write_audit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    action: str,
    actor: str,
    request_id: str | None,
    order_id: uuid.UUID | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    try:
        async with sessions() as session:
            connection = await session.connection()
            await connection.execute(
                insert(table(AuditLog)).values(
                    at=utcnow(),
                    action=action,
                    actor=actor,
                    request_id=request_id,
                    order_id=order_id,
                    target=target,
                    detail=detail or {},
                )
            )
            await session.commit()
    except Exception:
        AUDIT_FAILURES.inc()
        log.exception("could not write the audit row for %s", action)


def order_received_email(
    settings: ApiSettings, to: str, name: str, number: int, total: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = f"We received your order {number}"
    message.set_content(
        f"Hello {name},\n\nthank you for your order {number} ({total}). We are preparing it and "
        "will send your invoice as soon as the payment is captured.\n"
    )
    return message


async def send_order_received(settings: ApiSettings, message: EmailMessage) -> None:
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        EMAILS.labels("failed").inc()
        log.warning("order-received email for %s not sent: %r", message["Subject"], error)
        return
    EMAILS.labels("sent").inc()
