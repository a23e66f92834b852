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

.PHONY: help install test lint fmt typecheck services migrate migration seed serve gateway clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed  ## create .venv and install from uv.lock

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
	DATABASE_URL=$(DATABASE_URL) $(BIN)/uvicorn orders.main:app --host 127.0.0.1 --port $(PORT)

gateway: install  ## run the fake card gateway on http://127.0.0.1:8099
	$(BIN)/python -m fakes.gateway --port 8099

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install  ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy .

test: services lint typecheck  ## everything: services, lint, types, migrations, every test
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m orders.db
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/alembic upgrade head
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/alembic check
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest

clean:  ## remove the virtualenvs and caches
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
