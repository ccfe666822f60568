# recnb: `make serve` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install lock serve test test-heavy test-all sync-check nbtest pytest lab bench bench-scale docs browser postgres clean

install: $(STAMP)

# torch first, pinned to the CPU build, so sentence-transformers does not pull a CUDA build.
# Every install takes its versions from constraints.txt, so each run installs the same ones.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

# Refresh constraints.txt after changing the dependencies in pyproject.toml (or to take newer releases):
# resolve every extra afresh in a scratch venv and freeze it. Local version labels are dropped
# (torch 2.13.0+cpu is written torch==2.13.0; pip still prefers the CPU build where one is on disk).
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q torch==2.13.0
	$(LOCK_VENV)/bin/python -m pip install -q ".[dev,bench]"
	{ echo "# pip constraints for every install of recnb and its extras; written by \`make lock\`, do not edit"; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -v -i '^recnb[ =@]' | sed -E 's/^([^=]+==[^+]+)\+.*$$/\1/'; } > constraints.txt
	rm -rf $(LOCK_VENV)

serve: install
	$(BIN)/recnb train --if-missing
	$(BIN)/recnb models promote --if-none
	$(BIN)/recnb serve

test: install browser postgres sync-check nbtest pytest

# The notebooks are the source of truth: exporting and cleaning them must change nothing.
sync-check: install
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  before="$$(git status --porcelain -- nbs recnb)"; \
	  $(BIN)/nbdev-export && $(BIN)/nbdev-clean; \
	  after="$$(git status --porcelain -- nbs recnb)"; \
	  if [ "$$before" != "$$after" ]; then \
	    echo "nbdev-export / nbdev-clean changed files: notebooks and library are not in sync:"; \
	    git status --porcelain -- nbs recnb; exit 1; fi; \
	else echo "not a git checkout: skipping the notebook sync check"; fi

nbtest: install
	$(BIN)/nbdev-test --n-workers 2

# Two processes, each taking whole files (a file's fixtures start once): most of the tests' time is spent
# waiting on the servers and jobs they start, so two halves take little more than the longer one. The files come
# in tests/conftest.py's order: the two workers train the session's model once between them, and the other runs meanwhile.
pytest: install
	$(BIN)/python -m pytest tests -q -m "not heavy" -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# The tests marked heavy (tests/test_wheel.py, test_lab.py, test_spark.py: the wheel in venvs of its own,
# JupyterLab in a browser, Spark): about 10 minutes (3 of them training the session model), so `make test` stays under 25 minutes.
test-heavy: install browser postgres
	$(BIN)/python -m pytest tests -q -m heavy

test-all: test test-heavy

# JupyterLab on nbs/, with the project's .venv as the kernel "recnb (.venv)" (installed into the venv, not
# your home). Headless: it opens no browser and prints the URL with its token. --allow-root only for root.
LAB_PORT ?= 8888
LAB_ARGS ?=
lab: install
	$(BIN)/python -m ipykernel install --sys-prefix --name recnb --display-name "recnb (.venv)" >/dev/null
	$(BIN)/jupyter lab nbs --no-browser --port $(LAB_PORT) --ServerApp.port_retries=0 \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# The docs. Quarto builds the site (`.venv/bin/nbdev-docs`, on a machine that has Quarto); this renders
# an offline preview of the same processed notebooks into _preview/ (open _preview/index.html).
docs: install
	$(BIN)/python tools/docs_preview.py

# Debian's PostgreSQL server, for the store tests (tests/conftest.py starts a private one with tools/postgres.py).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "installing Debian's postgresql"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi

# Debian's Chromium and its driver, for the docs' browser test in tests/test_docs.py.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing Debian's chromium and chromium-driver"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; fi

# Benchmarks print ratios against baselines measured in the same run; scale.py takes about an hour
# (20k and 200k synthetic items; `make bench-scale SCALE_ARGS="--sizes 20k"` for the smaller one).
bench: install postgres
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/coldstart.py
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

bench-scale: install
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

clean:
	rm -rf .recnb _proc _docs _preview .pytest_cache $(LOCK_VENV)
