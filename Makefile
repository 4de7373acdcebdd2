# Everything runs from the repository root through the project virtualenv (.venv).
# From a fresh clone, only python3.11 (or a python3 that is 3.11) is needed: `make test`.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export PIP_DISABLE_PIP_VERSION_CHECK := 1

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := torch,demo,dev,quality,index,s3
# The interpreter that creates .venv: python3.11 when present, else python3.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k sample -x"`.
PYTEST_ARGS ?=
LINT_PATHS := src tests bench
SYSTEM_PACKAGES := chromium postgresql redis-server dataset-fashion-mnist

.PHONY: help venv system-deps test test-fast lint fmt demo bench clean distclean image smoke

help:
	@echo "make venv         create .venv and install the project with [$(EXTRAS)]"
	@echo "make test         lint, type-check and run the tests"
	@echo "make test-fast    the edit-test loop: no browser, slow or PostgreSQL tests (~2 min)"
	@echo "make lint         ruff check + ruff format --check + mypy"
	@echo "make fmt          ruff format + ruff check --fix"
	@echo "make demo         build the demo data, import, train and serve (lookalike demo)"
	@echo "make bench        run every bench/*.py"
	@echo "make system-deps  apt-get install $(SYSTEM_PACKAGES) (root only; browser/db/Redis tests, Fashion-MNIST)"
	@echo "make clean        remove tool caches and build outputs (distclean: also .venv, .cache)"
	@echo "make image        build the production container images with podman (deploy/, docs/deploy.md)"
	@echo "make smoke        start the container stack, import, train, predict, sign in; then remove it"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "python3.11 (or python3) not found on PATH" >&2; exit 1; }
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| echo "warning: $(PYTHON) is not Python 3.11; the install will likely refuse it" >&2
	"$(PYTHON)" -m venv $(VENV)

# Re-installs whenever pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	@touch $@

venv: $(STAMP)

# The browser tests (chromium), the database tests (a throwaway PostgreSQL cluster, see
# tests/support/pg.py), the Redis tests (tests/support/redis_server.py) and the Fashion-MNIST
# loader's test and benchmark need these Debian packages; `test` depends on this target. Installs only what is missing, only as root
# (otherwise it prints the apt-get command and goes on).
system-deps:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" \
			|| missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then \
		echo "system-deps: $(SYSTEM_PACKAGES) already installed"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "system-deps: not root, skipping; install them with: sudo apt-get install -y$$missing"; \
	else \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

test: venv system-deps
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

# The fast tier for the edit-test loop; `make test` (and CI) runs everything.
test-fast: venv
	$(BIN)/pytest -m "not browser and not slow" -k "not postgresql" $(PYTEST_ARGS)

demo: venv
	$(BIN)/lookalike demo

# bench/_*.py are helpers the scripts import (e.g. _support.py), not benchmarks.
bench: venv
	@for script in bench/*.py; do \
		[ -e "$$script" ] || continue; \
		case "$${script##*/}" in _*) continue ;; esac; \
		echo "== $$script"; \
		$(BIN)/python "$$script"; \
	done

# The production images (podman; as root, installs podman, runc, mmdebstrap, podman-compose
# when missing). Not part of `test`: building takes minutes and a container runtime.
image: venv
	deploy/image.sh

# The whole stack end to end on this machine, then removed (docs/deploy.md).
smoke: image
	deploy/smoke.sh

clean:
	rm -rf build dist .mypy_cache .pytest_cache .ruff_cache .hypothesis tests/artifacts
	find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
	find src -maxdepth 1 -name '*.egg-info' -type d -exec rm -rf {} + 2>/dev/null || true

distclean: clean
	rm -rf $(VENV) .cache
