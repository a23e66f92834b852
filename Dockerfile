# One image for every role: api, relay, worker, migrate. Build: docker build -t orders .
FROM python:3.11-slim AS base

# WeasyPrint's system libraries (Pango, HarfBuzz subsetting) and a font for invoices.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.8
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY alembic.ini ./
COPY migrations ./migrations
COPY orders ./orders
COPY fulfillment ./fulfillment
COPY fakes ./fakes
RUN uv sync --frozen --no-dev

# .spool/imports: uploaded stock files, a volume the api and the importer share (compose.yaml).
RUN useradd --create-home --uid 10001 app \
 && mkdir -p /app/.metrics /app/.spool/imports && chown app /app/.metrics /app/.spool/imports
USER app
EXPOSE 8000
# JSON lines from every process, the supervisor's own among them (orders/logging.json).
CMD ["uvicorn", "orders.main:app", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", \
     "--log-config", "orders/logging.json"]
