# RAE — the two commands: `make up` (run the suite locally) and `make test` (every check).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
# One stack per state dir; RAE_LOCAL_STATE_DIR and RAE_LOCAL_PORT_OFFSET (read by the stack's command
# line and tools/demo.py) run a second stack beside the first.
STATE_DIR ?= $(or $(RAE_LOCAL_STATE_DIR),.rae-local/dev)
STACK := $(PY) -m rae_localstack --state-dir $(STATE_DIR)
SRC_DIRS := libs/common/src services/*/src deploy/local/src tools

.PHONY: help install system-deps up down status env demo lint format typecheck test chart-check chart-generate clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

system-deps: ## Install missing Debian packages (redis-server)
	@bash deploy/local/install-system-deps.sh

install: system-deps ## Create .venv and install every package (skips when up to date)
	@bash deploy/tools/install-python.sh

up: install ## Start infrastructure and all seven services on 127.0.0.1
	@$(STACK) up

down: install ## Stop everything `make up` started
	@$(STACK) down

status: install ## Show what runs where
	@$(STACK) status

env: install ## Print the environment the services run with
	@$(STACK) env

demo: up ## Ingest samples/ through the gateway and run a few searches
	@$(PY) tools/demo.py --state-dir $(STATE_DIR)

lint: install ## ruff lint and format check
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: install ## Apply ruff fixes and formatting
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

typecheck: install ## mypy --strict on every src/
	@$(VENV)/bin/mypy $(SRC_DIRS)

test: lint typecheck ## Lint, types, then unit + integration + e2e + chart tests (starts its own stack)
	@$(PY) -m pytest

chart-check: ## helm lint + render + validate the charts
	@bash deploy/tools/chart-check.sh

chart-generate: install ## Regenerate the chart's settings.json, values.schema.json and README values table
	@$(PY) deploy/tools/chart_settings.py

clean: down ## Stop everything and delete local data
	rm -rf .rae-local
