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
WORKERS ?= 1

.PHONY: run serve test check format protocol bench vendor screenshots clean

# The chat page's JavaScript is linted (ESLint) and formatted (Prettier) by tools pinned in
# frontend/package-lock.json, installed by `npm ci` when missing or changed: only `make check`,
# `make format` and `make vendor` need Node.js and npm. Ours only, not streaming/.../vendor/.
NPM_MODULES := frontend/node_modules
JS_TOOLS := $(NPM_MODULES)/.tools-installed
ESLINT := $(NPM_MODULES)/.bin/eslint --config frontend/eslint.config.mjs
PRETTIER := $(NPM_MODULES)/.bin/prettier --config frontend/prettier.config.json
JS_LINTED := streaming/static/streaming tests/js frontend/eslint.config.mjs
JS_FORMATTED := 'streaming/static/streaming/**/*.{js,json}' '!streaming/static/streaming/vendor/**' \
	'tests/js/**/*.{js,json}' frontend/eslint.config.mjs frontend/prettier.config.json

run: $(RUNTIME) var/secret_key
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	@$(RUN_ENV) $(PY) manage.py demo_user
	$(RUN_ENV) $(PY) manage.py serve --host $(HOST) --port $(PORT)

# Production: WORKERS daphne processes on ports PORT, PORT+1, … behind nginx (deploy/nginx.conf),
# which serves collectstatic's output. No demo user; WORKERS > 1 needs REDIS_URL.
serve: $(RUNTIME) var/secret_key
	$(RUN_ENV) $(PY) manage.py migrate --noinput
	$(RUN_ENV) $(PY) manage.py collectstatic --noinput
	$(RUN_ENV) $(PY) manage.py serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# pytest-xdist processes: most tests wait on servers, browsers and streams, not on the CPU,
# so more processes than cores still shorten the run. TEST_WORKERS=0 runs it in this one.
TEST_WORKERS ?= 3

test: $(DEV)
	node --test tests/js/
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

check: $(DEV) var/secret_key $(JS_TOOLS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(RUN_ENV) $(PY) manage.py protocol_js --check
	$(ESLINT) --max-warnings 0 $(JS_LINTED)
	$(PRETTIER) --check $(JS_FORMATTED)

# The page's copy of the frame types, error codes, close codes and message statuses and roles
# (chat/protocol.js), from streaming/frames.py, exceptions.py and models.py; committed, so
# serving needs no build.
protocol: $(RUNTIME) var/secret_key
	$(RUN_ENV) $(PY) manage.py protocol_js

format: $(DEV) $(JS_TOOLS)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(ESLINT) --fix $(JS_LINTED)
	$(PRETTIER) --write $(JS_FORMATTED)

bench: $(VENV)/.bench-installed
	$(PY) -m bench

# The README's pictures, from a real conversation in Chromium (tests/browser/test_screenshots_browser.py).
screenshots: $(DEV)
	SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest tests/browser/test_screenshots_browser.py -q

# The chat page's browser libraries, pinned in frontend/package-lock.json. The copies under
# streaming/static/streaming/vendor/ are committed, so serving and testing need no Node.js.
# axe-core, pinned with them, is the browser tests' alone: its copy is under tests/vendor/,
# out of what the site serves, and the tests hand it to the page themselves.
VENDOR := streaming/static/streaming/vendor
TEST_VENDOR := tests/vendor

vendor:
	cd frontend && npm ci --no-audit --no-fund
	rm -rf $(VENDOR) $(TEST_VENDOR)
	mkdir -p $(VENDOR)/markdown-it $(VENDOR)/markdown-it-task-lists $(VENDOR)/markdown-it-texmath \
		$(VENDOR)/dompurify $(VENDOR)/highlight.js $(VENDOR)/katex
	cp $(NPM_MODULES)/markdown-it/dist/browser/markdown-it.umd.min.js $(NPM_MODULES)/markdown-it/LICENSE \
		$(VENDOR)/markdown-it/
	# markdown-it's browser build bundles these; their licences go beside it.
	for dep in linkify-it mdurl entities; do \
		cp $(NPM_MODULES)/$$dep/LICENSE $(VENDOR)/markdown-it/LICENSE.$$dep; done
	cp $(NPM_MODULES)/uc.micro/LICENSE.txt $(VENDOR)/markdown-it/LICENSE.uc.micro
	cp $(NPM_MODULES)/punycode.js/LICENSE-MIT.txt $(VENDOR)/markdown-it/LICENSE.punycode
	cp $(NPM_MODULES)/@hedgedoc/markdown-it-task-lists/dist/index.umd.js \
		$(VENDOR)/markdown-it-task-lists/markdown-it-task-lists.umd.js
	cp $(NPM_MODULES)/@hedgedoc/markdown-it-task-lists/LICENSES/ISC.txt \
		$(VENDOR)/markdown-it-task-lists/LICENSE
	cp $(NPM_MODULES)/markdown-it-texmath/texmath.js $(VENDOR)/markdown-it-texmath/
	cp $(NPM_MODULES)/markdown-it-texmath/license.txt $(VENDOR)/markdown-it-texmath/LICENSE
	cp $(NPM_MODULES)/dompurify/dist/purify.min.js $(NPM_MODULES)/dompurify/LICENSE \
		$(VENDOR)/dompurify/
	cp $(NPM_MODULES)/@highlightjs/cdn-assets/highlight.min.js \
		$(NPM_MODULES)/@highlightjs/cdn-assets/styles/github.min.css \
		$(NPM_MODULES)/@highlightjs/cdn-assets/styles/github-dark.min.css \
		$(NPM_MODULES)/@highlightjs/cdn-assets/LICENSE $(VENDOR)/highlight.js/
	cp $(NPM_MODULES)/katex/dist/katex.min.js $(NPM_MODULES)/katex/LICENSE $(VENDOR)/katex/
	mkdir -p $(TEST_VENDOR)/axe-core
	cp $(NPM_MODULES)/axe-core/axe.min.js $(NPM_MODULES)/axe-core/LICENSE \
		$(NPM_MODULES)/axe-core/LICENSE-3RD-PARTY.txt $(TEST_VENDOR)/axe-core/

$(JS_TOOLS): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

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
