# AgentAlina task runner. `make help` lists the targets; the README's two commands are
# `make run` and `make test`.
SHELL := /bin/bash
VENV  := .venv
ALINA := $(VENV)/bin/alina
PY    := $(VENV)/bin/python
TASK  ?= What is the BTC/USDT trend over the last day of data, and is the system healthy?

.DEFAULT_GOAL := help
.PHONY: help setup up down run test test-unit bench lint doctor clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install system packages, the venv and the models (idempotent)
	@scripts/setup.sh

up: setup ## start local Postgres and Redis on loopback
	@$(ALINA) up

down: ## stop local Postgres and Redis
	@$(ALINA) down

run: up ## set up, start services and run ALINA's team headless on the embedded model (TASK=...)
	@printf '\n\033[1m==> ALINA team run\033[0m\n'
	@$(ALINA) run "$(TASK)"

test: setup ## set up and run the whole test suite (unit, integration, end-to-end)
	@printf '\n\033[1m==> tests\033[0m\n'
	@$(PY) -m pytest -p no:cacheprovider

test-unit: setup ## only the fast unit tests
	@$(PY) -m pytest -p no:cacheprovider -m "not integration and not slow"

bench: setup ## run every benchmark (writes bench/results/; about an hour)
	@for b in $$($(PY) -m bench --list | cut -d' ' -f1); do $(PY) -m bench $$b || exit 1; done

doctor: setup ## check model, Postgres, Redis and disk
	@$(ALINA) doctor

lint: setup ## ruff check, ruff format --check, mypy and the import contracts (lint-imports)
	@printf '\n\033[1m==> lint\033[0m\n'
	@$(VENV)/bin/ruff check alina tests bench
	@$(VENV)/bin/ruff format --check alina tests bench
	@$(VENV)/bin/mypy alina
	@$(VENV)/bin/lint-imports

clean: down ## stop services and delete local data (.alina/)
	rm -rf .alina
