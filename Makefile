# mockllm: `make run` serves on 127.0.0.1:8000, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check --quiet
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test test-fast lint browser node-clients bench-shared bench-team bench bench-pacing bench-reload soak fuzz install install-dev migrate conformance clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Your own copy of the default answers: edit it freely, it is not tracked by git.
responses.yml:
	cp fixtures/responses.yml responses.yml

migrate: install
	$(PY) manage.py migrate --noinput

run: install responses.yml migrate
	$(PY) manage.py loadresponses responses.yml
	$(PY) manage.py runserver $(HOST):$(PORT)

# Three workers, each taking whole files (module fixtures are built once): most of the suite waits on servers.
test: install-dev browser node-clients lint
	$(PY) manage.py check
	$(PY) -m pytest -n 3 --dist loadfile

# ruff, with the settings in pyproject.toml.
lint: install-dev
	$(PY) -m ruff check .

# The suite without the tests marked slow, in about half the time (without installing the browser).
test-fast: install-dev node-clients lint
	$(PY) manage.py check
	$(PY) -m pytest -n 3 --dist loadfile -m "not slow"

# The node libraries of the client matrix (tests/test_client_matrix.py), exactly as locked in
# tests/clients/package-lock.json; installed again only when the lockfile changes. Without npm the
# matrix leaves them out and says so (and fails under MOCKLLM_REQUIRE_SERVICES=1, as in CI).
NODE_CLIENTS := tests/clients
$(NODE_CLIENTS)/node_modules/.installed: $(NODE_CLIENTS)/package-lock.json $(NODE_CLIENTS)/package.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix $(NODE_CLIENTS) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "npm is missing: the client matrix will leave out its node libraries"; \
	fi

node-clients: $(NODE_CLIENTS)/node_modules/.installed

# The browser test drives Debian's chromium through chromedriver; installed here when missing
# (as root, with apt). Elsewhere the suite leaves that test out and says so.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver (Debian) for the browser test"; \
	    apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	      (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null); \
	  else \
	    echo "chromium and chromedriver are missing and cannot be installed here: the browser test will be left out"; \
	  fi; \
	fi

# Side by side with aimock (pinned, from npm, in .bench/aimock), the original mockllm==0.0.8 (in its own
# venv) and a bare ASGI app under uvicorn and daphne, driven by wrk. ARGS="--quick" or "--only main".
BENCH_VENV := .bench
AIMOCK_VERSION := 1.43.0
$(BENCH_VENV)/.installed: tests/benchmarks/requirements-original.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip --disable-pip-version-check --quiet install -r tests/benchmarks/requirements-original.txt
	touch $@

$(BENCH_VENV)/aimock/.installed-$(AIMOCK_VERSION): | $(BENCH_VENV)/.installed
	@if command -v npm >/dev/null; then \
	  npm install --prefix $(BENCH_VENV)/aimock --save-exact --no-audit --no-fund --loglevel=error \
	    @copilotkit/aimock@$(AIMOCK_VERSION) && touch $@; \
	else \
	  echo "npm is missing: the benchmark will leave aimock out"; \
	fi

bench: install-dev $(BENCH_VENV)/.installed $(BENCH_VENV)/aimock/.installed-$(AIMOCK_VERSION)
	@command -v wrk >/dev/null || apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)
	@# Both parts run; make bench fails at the end when a target of either failed.
	@status=0; \
	$(PY) tests/benchmarks/compare.py --original-python $(BENCH_VENV)/bin/python $(ARGS) || status=1; \
	$(PY) tests/benchmarks/providers.py || status=1; \
	exit $$status

# The shared deployment: journal on vs off, several processes (daphne behind nginx vs uvicorn --workers),
# PostgreSQL connection reuse. Needs wrk and nginx (installed here when missing) and a PostgreSQL server.
bench-shared: install-dev
	@command -v wrk >/dev/null || apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)
	@command -v nginx >/dev/null || apt-get install -y -qq nginx || (apt-get update -qq && apt-get install -y -qq nginx)
	$(PY) tests/benchmarks/shared.py $(ARGS)

# One test run's heavy use (journal long-polls, many or bulk adds) against another run's latency.
# Needs PostgreSQL and Redis at 127.0.0.1.
bench-team: install-dev
	$(PY) tests/benchmarks/team.py $(ARGS)

# How closely paced streams keep their configured pace, alone and 100 or 1,000 at once.
bench-pacing: install-dev
	$(PY) tests/benchmarks/pacing.py $(ARGS)

# How long each kind of edit of the responses file takes to be served (hot reload).
bench-reload: install-dev
	$(PY) tests/benchmarks/hot_reload.py $(ARGS)

# Long runs of the robustness checks that `make test` runs briefly.
soak: install-dev
	$(PY) tests/soak.py --seconds $(or $(SECONDS),600)

fuzz: install-dev
	MOCKLLM_FUZZ_EXAMPLES=$(or $(EXAMPLES),2000) $(PY) -m pytest tests/test_fuzz.py tests/test_properties.py tests/test_dump.py \
		--hypothesis-seed=$(or $(SEED),0) -q

# The shared SDK conformance check against a server that is already running (make run).
conformance: install-dev
	$(PY) ../shared/tools/sdk_conformance.py http://$(HOST):$(PORT) $(ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache $(NODE_CLIENTS)/node_modules
