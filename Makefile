# Pinstack developer front door. The work is done by scripts/bootstrap.sh and scripts/stack.py.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PATH := $(HOME)/.local/bin:$(PATH)
export UV_PYTHON_DOWNLOADS := never

PYTHON ?= python3
STACK := $(PYTHON) scripts/stack.py
UV_RUN := uv run $(if $(wildcard uv.lock),--frozen,)
PYTEST_ARGS ?=

# pytest exits 5 when it collects no test: that is not a failure here
define run_pytest
rc=0; $(UV_RUN) pytest $(1) || rc=$$?; \
if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5), counted as success"; rc=0; fi; \
exit $$rc
endef

.PHONY: help bootstrap up down status logs infra test test-unit lint fmt openapi bench clean

help: ## list the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

bootstrap: ## install what is missing (apt packages, uv, .venv, Kafka jars); fast when all is there
	@scripts/bootstrap.sh

up: bootstrap ## start the whole stack (infra + services) on 127.0.0.1, reusing what runs
	@$(STACK) up

down: ## stop everything the stack started
	@$(STACK) down

status: ## show components, PIDs, ports, states and URLs
	@$(STACK) status

logs: ## tail all logs (make logs NAME=users F=1 to follow one)
	@$(STACK) logs $(NAME) $(if $(F),-f,)

infra: bootstrap ## start PostgreSQL, Redis, Kafka and Prometheus only
	@$(STACK) up --infra-only

test: infra ## run the whole test suite against the local infra (PYTEST_ARGS=... to narrow)
	@eval "$$($(STACK) env)"; $(call run_pytest,services -n 2 $(PYTEST_ARGS))

test-unit: bootstrap ## run the unit tests only (no servers needed)
	@$(call run_pytest,services -m unit $(PYTEST_ARGS))

lint: ## ruff check, ruff format --check, mypy and import-linter
	$(UV_RUN) ruff check . && $(UV_RUN) ruff format --check . && $(UV_RUN) mypy services/*/src && $(UV_RUN) lint-imports

fmt: ## format the code and apply ruff's safe fixes
	$(UV_RUN) ruff format . && $(UV_RUN) ruff check --fix .

openapi: ## write services/gateway/openapi.json
	$(UV_RUN) python -m pinstack_gateway.openapi

bench: ## load the running stack (make up) with wrk: req/s and p50/p99 per scenario
	@$(UV_RUN) python -m bench.run

clean: ## stop the stack and delete .stack (all local data)
	@$(STACK) clean
