# Two commands for a newcomer: `make demo` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/orders
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/orders_test
PORT ?= 8000

WORKER_QUEUES ?= steps,invoices,webhooks,imports
WORKER_CONCURRENCY ?= 2
WORKER_NAME ?= worker

N ?= 12

.PHONY: help install system-deps compose-tools demo test lint fmt typecheck services migrate \
	migration seed serve worker relay gateway bench docs-images compose-check browser clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed system-deps  ## create .venv and install from uv.lock

# What the demo runs needs from the system: WeasyPrint needs Pango; HarfBuzz-Subset makes its font
# subsetting several times faster. Nothing else: never a container engine.
SYSTEM_LIBS := libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0 \
	libharfbuzz-subset.so.0:libharfbuzz-subset0
system-deps:  ## the system libraries WeasyPrint needs (installed with apt-get when root)
	@missing=""; for pair in $(SYSTEM_LIBS); do \
	  ldconfig -p | grep -q "$${pair%%:*}" || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "WeasyPrint needs:$$missing (apt-get install$$missing)"; exit 1; fi; fi

# Debian's docker-compose validates compose.yaml without an engine; without its recommended
# packages it brings no engine either.
compose-tools:  ## docker-compose for `make compose-check` (apt-get, no Docker engine)
	@command -v docker-compose >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing docker-compose (without a Docker engine)"; apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends docker-compose; \
	  else echo "compose-check needs docker-compose (apt-get install --no-install-recommends docker-compose)"; exit 1; fi; }

demo: install $(if $(filter services,$(STACK)),services)  ## the whole flow: N orders (12), STACK=embedded|services
	$(BIN)/python -m demo.run --orders $(N) $(if $(STACK),--stack $(STACK))

services: install  ## check that PostgreSQL and RabbitMQ answer (CI=true also starts them)
	$(BIN)/python scripts/check_services.py $(if $(CI),--start)

migrate: install  ## create the database if missing and upgrade it to the newest revision
	DATABASE_URL=$(DATABASE_URL) $(BIN)/python -m orders.db
	DATABASE_URL=$(DATABASE_URL) $(BIN)/alembic upgrade head

migration: install  ## new revision from the models: make migration m="add invoice table"
	@test -n "$(m)" || (echo 'usage: make migration m="what changes"' && exit 2)
	DATABASE_URL=$(DATABASE_URL) $(BIN)/alembic revision --autogenerate -m "$(m)"

seed: migrate  ## load the sample catalog (products with stock)
	DATABASE_URL=$(DATABASE_URL) $(BIN)/python -m orders.seed

serve: migrate  ## run the API on http://127.0.0.1:$(PORT)
	@echo "ops dashboard: http://127.0.0.1:$(PORT)/ops/dashboard (sign in with OPS_API_KEY)"
	DATABASE_URL=$(DATABASE_URL) $(BIN)/uvicorn orders.main:app --host 127.0.0.1 --port $(PORT) \
		--timeout-graceful-shutdown 5

WORKER_METRICS_PORT ?= 9101
worker: migrate  ## a Celery worker (WORKER_NAME, WORKER_QUEUES, WORKER_CONCURRENCY); metrics on WORKER_METRICS_PORT
	rm -rf .metrics/worker-$(WORKER_METRICS_PORT) && mkdir -p .metrics/worker-$(WORKER_METRICS_PORT)
	DATABASE_URL=$(DATABASE_URL) WORKER_METRICS_PORT=$(WORKER_METRICS_PORT) \
	  PROMETHEUS_MULTIPROC_DIR=.metrics/worker-$(WORKER_METRICS_PORT) \
	  $(BIN)/celery -A fulfillment.celery_app worker -n $(WORKER_NAME)@%h \
	  -Q $(WORKER_QUEUES) --concurrency $(WORKER_CONCURRENCY) --loglevel INFO --without-heartbeat

relay: migrate  ## the outbox relay: publishes committed outbox rows to RabbitMQ
	DATABASE_URL=$(DATABASE_URL) $(BIN)/python -m fulfillment.relay

gateway: install  ## run the fake card gateway on http://127.0.0.1:8099
	$(BIN)/python -m fakes.gateway --port 8099

lint: install  ## ruff lint and format check; import-linter: which part may import which
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

fmt: install  ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy .

bench: install services  ## the 500 ms rule measured: 4 to 24 minutes, table + bench/results/*.json
	$(BIN)/python -m bench.run

docs-images: install services browser  ## the README's pictures: an invoice, a credit note, the dashboard
	$(BIN)/python scripts/docs_images.py
	$(BIN)/python scripts/dashboard_image.py

compose-check: compose-tools  ## validate compose.yaml without a Docker engine (Debian's docker-compose)
	SECRET_KEY=check OPS_API_KEY=check docker-compose -f compose.yaml config --quiet && echo "compose.yaml is valid"

# The dashboard's tests drive Debian's Chromium with Playwright's Python API (its own browser
# download is not needed: the tests give it /usr/bin/chromium).
browser:  ## Debian's chromium for the browser tests (apt-get)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium"; apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "the browser tests need chromium (apt-get install chromium)"; exit 1; fi; }

test: services compose-tools browser lint typecheck  ## everything: services, lint, types, migrations, every test
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m orders.db
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/alembic upgrade head
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/alembic check
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest

clean:  ## remove the virtualenvs and caches
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
