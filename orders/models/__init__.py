"""Tables, one module per aggregate. Every change here is an Alembic revision
(`make migration m="..."`). Importing this package registers every table on SQLModel.metadata."""

from orders.models.audit import AuditLog
from orders.models.base import table, utcnow
from orders.models.catalog import Product, StockReservation
from orders.models.idempotency import IdempotencyKey, IdempotencyStatus
from orders.models.images import ImageStatus, ProductImage, ProductImageVariant
from orders.models.invoice import Invoice, InvoiceCounter
from orders.models.messaging import Outbox
from orders.models.order import (
    FIRST_ORDER_NUMBER,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    next_order_number,
)
from orders.models.payment import Payment, PaymentStatus
from orders.models.refund import (
    Cancellation,
    CancellationKind,
    CancellationStatus,
    CreditNote,
    CreditNoteCounter,
)
from orders.models.stock_import import ENDED as IMPORT_ENDED
from orders.models.stock_import import ImportJob, ImportRowError, ImportStatus
from orders.models.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "FIRST_ORDER_NUMBER",
    "IMPORT_ENDED",
    "AuditLog",
    "Cancellation",
    "CancellationKind",
    "CancellationStatus",
    "CreditNote",
    "CreditNoteCounter",
    "DeliveryStatus",
    "IdempotencyKey",
    "IdempotencyStatus",
    "ImageStatus",
    "ImportJob",
    "ImportRowError",
    "ImportStatus",
    "Invoice",
    "InvoiceCounter",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OrderStatus",
    "Outbox",
    "Payment",
    "PaymentStatus",
    "Product",
    "ProductImage",
    "ProductImageVariant",
    "StockReservation",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "next_order_number",
    "table",
    "utcnow",
]
