# Two commands do all set-up on a fresh machine (Python 3.11 and make):
#   make serve   create .venv, install, migrate the embedded SQLite database, run daphne
#                (WORKERS=N: N daphne processes on one port, proxysite/workers.py)
#   make test    the same set-up, then the whole suite (SQLite, and PostgreSQL when reachable)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8317
WORKERS ?= 1
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres

.PHONY: serve test test-sqlite test-postgres install install-dev migrate lint format bench compat clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: $(BIN)/python requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

serve: migrate
	$(BIN)/python manage.py bootstrap --host $(HOST) --port $(PORT)
	@if [ "$(WORKERS)" -gt 1 ]; then \
		exec $(BIN)/python -m proxysite.workers --workers $(WORKERS) --host $(HOST) --port $(PORT); \
	else \
		exec $(BIN)/daphne -b $(HOST) -p $(PORT) proxysite.asgi:application; \
	fi

test: install-dev
	$(BIN)/python manage.py check --fail-level ERROR
	$(BIN)/ruff check .
	$(BIN)/pytest
	@if $(BIN)/python -m tests.services postgres "$(POSTGRES_URL)"; then \
		echo "== PostgreSQL pass ($(POSTGRES_URL)) =="; \
		DATABASE_URL="$(POSTGRES_URL)" $(BIN)/pytest; \
	else \
		echo "PostgreSQL is not reachable at $(POSTGRES_URL): skipped the PostgreSQL pass."; \
		if [ -n "$$REQUIRE_SERVICES" ]; then echo "REQUIRE_SERVICES is set: failing."; exit 1; fi; \
	fi

test-sqlite: install-dev
	$(BIN)/pytest

test-postgres: install-dev
	DATABASE_URL="$(POSTGRES_URL)" $(BIN)/pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/serving.py

# Real Claude Code (pinned, installed into ~/.cache/claude-proxy) and the SDK against the proxy
# and strict fake upstreams; writes docs/compatibility.md. One cell: make compat CELL=gemini-3/hello
compat: install-dev
	$(BIN)/python -m tests.compat $(if $(CELL),--cell '$(CELL)') $(if $(JOBS),--jobs $(JOBS)) $(if $(HOLD),--hold)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
