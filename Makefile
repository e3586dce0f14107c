# The ResNet Book: two commands do all set-up on a fresh machine.
#   make book   create .venv if missing, install, execute every notebook, build _build/html
#   make test   same set-up, unit tests, nbval over book/, book build, browser test
# PROFILE chooses how big every experiment is (ci | default | full); see resnet_lib/profiles.py.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= ci
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export RESNET_BOOK_PROFILE := $(PROFILE)
export RESNET_BOOK_RESULTS ?= $(CURDIR)/_results
export MPLBACKEND := agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# Print how long each stage took.
timed = start=$$(date +%s); $(1); echo "[stage] $(2): $$(( $$(date +%s) - start )) s"

.PHONY: install book test unit notebooks browser-deps browser-test lint clean help

help:
	@sed -n '2,5p' Makefile

$(STAMP): requirements.txt pyproject.toml
	@$(call timed, test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v '^WARNING: Location' || true; \
	  $(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v '^WARNING: Location' || true; \
	  $(PY) -c 'import torch, torchvision, resnet_lib, jupyter_book, nbval, playwright', install)
	@touch $(STAMP)

install: $(STAMP)

# Execution is forced on every build (_config.yml), so a change to resnet_lib can never
# leave stale outputs in the book; trained runs are reused only through resnet_lib's
# results cache, whose keys include a hash of the library's source.
book: install
	@rm -rf _build/html _build/jupyter_execute
	@$(call timed, TQDM_DISABLE=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going, book build (profile $(PROFILE)))
	@test -f _build/html/index.html

unit: install
	@$(call timed, $(PY) -m pytest tests -q -m "not browser" --durations=10, unit tests)

notebooks: install
	@$(call timed, $(PY) -m pytest --nbval-lax book --durations=0 -q, notebooks under nbval (profile $(PROFILE)))

browser-deps:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium >/dev/null; }

browser-test: install browser-deps
	@$(call timed, RESNET_BOOK_REQUIRE_BUILD=1 $(PY) -m pytest tests -q -m browser, browser test)

# Everything CI runs: build the book (training runs land in the results cache), then one
# pytest run over the unit tests, every notebook (nbval) and the built pages (browser).
test: install browser-deps
	@$(MAKE) --no-print-directory book
	@$(call timed, RESNET_BOOK_REQUIRE_BUILD=1 $(PY) -m pytest tests book --nbval-lax --durations=15, pytest: unit + notebooks + browser)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf _build _results screenshots
