"""The ASGI entry point: `uvicorn orders.main:app` (the app itself is orders.api)."""

from orders.api.app import create_app
from orders.api.config import settings
from orders.context import configure_logging

configure_logging(settings.log_format)
app = create_app(settings)
