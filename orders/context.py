"""Who and what a log line is about: the request id and the order id, carried in contextvars
from the API through the outbox and Celery headers to the worker's logs."""

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from types import TracebackType
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
order_id: ContextVar[str | None] = ContextVar("order_id", default=None)


SECRET_QUERY = re.compile(r"(access_token=)[^&\s\"]*")


def redact(value: object) -> object:
    """An order's token in a query string (the live stream's, for EventSource) never logged."""
    if isinstance(value, str) and "access_token=" in value:
        return SECRET_QUERY.sub(r"\1[redacted]", value)
    return value


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.order_id = order_id.get()
        if isinstance(record.args, tuple):  # uvicorn's access log passes the path as an arg
            record.args = tuple(redact(arg) for arg in record.args)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "order_id"):
            if value := getattr(record, key, None):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(fmt: str, level: str = "INFO") -> None:
    """`json` for machines, `text` for people at a terminal: every line of the process, uvicorn's
    access and error logs and an uncaught exception's traceback among them."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s order=%(order_id)s] %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn = logging.getLogger(name)
        uvicorn.handlers.clear()  # its own plain-text handlers: through ours instead
        uvicorn.propagate = True
    sys.excepthook = log_uncaught
    logging.captureWarnings(True)  # warnings too, as lines of the logger py.warnings
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise here
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # seven lines per PDF


def log_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    logging.getLogger("uncaught").critical("uncaught %s", kind.__name__, exc_info=(kind, error, tb))
