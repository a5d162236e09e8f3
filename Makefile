# chatsite — `make run` to serve it, `make test` to test it. See README.md.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# The secret key `make run` generated once; an exported SECRET_KEY wins.
RUN_ENV := SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}"
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test check format bench clean

run: $(RUNTIME) var/secret_key
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	@$(RUN_ENV) $(PY) manage.py demo_user
	$(RUN_ENV) $(PY) manage.py serve --host $(HOST) --port $(PORT)

test: $(DEV)
	node --test tests/js/
	$(PY) -m pytest $(PYTEST_ARGS)

check: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(DEV)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.bench-installed
	$(PY) -m bench

$(VENV)/.bench-installed: requirements.txt requirements-dev.txt requirements-bench.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@ $(DEV) $(RUNTIME)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(DEV): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(RUNTIME)

var/secret_key: | $(VENV)/bin/python
	mkdir -p var
	umask 077 && $(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
