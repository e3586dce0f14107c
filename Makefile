# The ResNet Book: two commands do all set-up on a fresh machine.
#   make book   create .venv if missing, install, execute every notebook, build _build/html
#   make test   same set-up, build the book, then unit tests + browser tests + nbval over book/ on the stand-in
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
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Real CIFAR-10: the shared subset beside a checkout of this project (CI, the developers' machines) when it
# is there and RESNET_BOOK_DATA is not set; elsewhere resnet_lib's own default (~/.cache/resnet_book/data,
# downloaded when possible, else the procedural stand-in).
# Found with the shell, not $(wildcard)/$(abspath), which split a checkout path with a space into two words.
SUBSET := $(shell cd -- "$(CURDIR)/../shared/data/cifar10-subset" 2>/dev/null && test -f cifar-10-batches-py/data_batch_1 && pwd)
ifneq ($(SUBSET),)
export RESNET_BOOK_DATA ?= $(SUBSET)
endif
# The published CIFAR-10 ResNets trained to convergence (resnet_lib/models/published.py): the shared copy beside a
# checkout, like the subset; resnet_lib looks there by itself too, and in ~/.cache/resnet_book/weights.
WEIGHTS := $(shell cd -- "$(CURDIR)/../shared/weights/akamaster-cifar10-resnets" 2>/dev/null && test -f SHA256SUMS && pwd)
ifneq ($(WEIGHTS),)
export RESNET_BOOK_WEIGHTS ?= $(WEIGHTS)
endif
# One intra-op thread per process: on the 2-core CI machine, a 2-thread training step took 42 s of CPU
# where 1 thread took 1.3 s whenever the other core was busy (OpenMP threads waiting on each
# other), and 1 thread alone is as fast as the 2-thread numbers of the reference table.
# The `runs` stage (python -m resnet_lib.fill_cache) trains the chapters' nets in one such process per core.
# Override with `make test OMP_NUM_THREADS=4` on a bigger machine.
export OMP_NUM_THREADS ?= 1

# Every stage prints how long it took.
START = start=$$(date +%s)
STOP = echo "[stage] $@: $$(( $$(date +%s) - start )) s"
PIP = $(PY) -m pip install -q --disable-pip-version-check

.PHONY: install lock runs mathjax book test unit notebooks notebooks-standin browser-deps browser-test lint clean help lab

help:
	@sed -n '2,5p' Makefile

# Installs requirements.lock (exact versions, every file's sha256: pip refuses any other file), then
# resnet_lib itself without dependencies. requirements.txt is the hand-edited source; `make lock` regenerates
# the lock from it.
$(STAMP): requirements.lock requirements.txt pyproject.toml
	@$(START); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	$(PIP) --require-hashes -r requirements.lock 2>&1 | { grep -v '^WARNING: Location' || true; }; \
	$(PIP) --no-deps --no-build-isolation -e . 2>&1 | { grep -v '^WARNING: Location' || true; }; \
	$(PY) -c 'import torch; import torchvision; import resnet_lib; import jupyter_book; import nbval; import playwright'; \
	touch $(STAMP); \
	echo "[stage] install: $$(( $$(date +%s) - start )) s"

install: $(STAMP)

# requirements.lock from requirements.txt: one resolution for every platform (markers keep torch's CUDA wheels
# to Linux) and Python >= 3.11, from PyPI only (uv reads no pip.conf; --no-config: nor uv.toml), with the sha256
# of every file of each version.
# Pins already in the lock are kept where requirements.txt still allows them; `make lock LOCK_ARGS=--upgrade`
# moves every package to its newest allowed version. uv runs from a venv of its own (_build/lock-tool), not .venv.
UV_VERSION := 0.13.9
LOCK_TOOL := _build/lock-tool
LOCK_ARGS ?=
lock:
	@test -x $(LOCK_TOOL)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOL) && $(LOCK_TOOL)/bin/pip install -q uv==$(UV_VERSION); }
	$(LOCK_TOOL)/bin/uv pip compile requirements.txt -o requirements.lock --universal --python-version 3.11 \
	  --generate-hashes --no-config --custom-compile-command 'make lock' -q $(LOCK_ARGS)

# The CIFAR nets of chapters 1, 3 and 5 (and the chapters after them), trained once into the results
# cache in one process per core, before any notebook asks for them.
runs: install
	@$(START); $(PY) -c 'from resnet_lib.fill_cache import main; raise SystemExit(main())'; \
	echo "[stage] train the chapters' nets (profile $(PROFILE), data $${RESNET_BOOK_DATASET:-auto}): $$(( $$(date +%s) - start )) s"

# MathJax 3, served by the book itself so that equations render without internet: the pinned npm
# package (npm checks its integrity), unpacked once into _build/mathjax; _config.yml copies it to the
# site's root (html_extra_path) and points mathjax_path at it.
MATHJAX_VERSION := 3.2.2
MATHJAX_DIR := _build/mathjax/mathjax
$(MATHJAX_DIR)/tex-mml-chtml.js:
	@command -v npm >/dev/null || { echo "make: npm is needed to fetch MathJax $(MATHJAX_VERSION) for the book (Debian: apt-get install npm)"; exit 2; }
	@rm -rf _build/mathjax && mkdir -p _build/mathjax/npm $(MATHJAX_DIR) && \
	  cd _build/mathjax/npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	@cd _build/mathjax/npm/package && cp LICENSE ../../mathjax/ && cd es5 && cp -r tex-mml-chtml.js input output ui a11y adaptors ../../../mathjax/
	@rm -rf _build/mathjax/npm; echo "MathJax $(MATHJAX_VERSION) in $(MATHJAX_DIR)"

mathjax: $(MATHJAX_DIR)/tex-mml-chtml.js

# Execution is forced on every build (_config.yml), so a change to resnet_lib can never
# leave stale outputs in the book; trained runs are reused only through resnet_lib's
# results cache, whose keys include a hash of the library's source.
book: runs mathjax
	@$(START); rm -rf _build/html _build/jupyter_execute; \
	TQDM_DISABLE=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going; \
	test -f _build/html/index.html; \
	echo "[stage] book build (profile $(PROFILE)): $$(( $$(date +%s) - start )) s"

unit: install
	@$(START); $(PY) -m pytest tests -q -m "not browser" --durations=10; $(STOP)

notebooks: install
	@$(START); $(PY) -m pytest --nbval-lax book --durations=0 -q; $(STOP)

# Every notebook on the procedural stand-in, the data of a reader who has no CIFAR-10.
notebooks-standin: export RESNET_BOOK_DATASET := standin
notebooks-standin: runs
	@$(START); $(PY) -m pytest --nbval-lax book --durations=0 -q; $(STOP)

browser-deps:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium"; \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; }
	@command -v shellcheck >/dev/null || { echo "installing Debian's shellcheck (actionlint checks the workflows' scripts with it)"; \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq shellcheck >/dev/null || \
	  { $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq shellcheck >/dev/null; } || \
	  echo "shellcheck could not be installed: actionlint will not check the workflows' shell scripts"; }

browser-test: install browser-deps
	@$(START); RESNET_BOOK_REQUIRE_BUILD=1 $(PY) -m pytest tests -q -m browser; $(STOP)

# Everything CI runs: build the book (on real CIFAR-10 where it is at hand; the nets land in the results
# cache), then one pytest run over the unit tests, the built pages (browser) and every notebook (nbval)
# on the procedural stand-in. The build asserts every check cell on the real data, nbval on the stand-in.
# The stand-in's nets train in the background while the real ones train and the book builds (the build
# executes one notebook at a time, on one core); the pytest run uses a worker per core (pytest-xdist;
# --dist loadfile keeps each notebook's cells, and each test file's fixtures, on one worker).
test: install browser-deps
	@mkdir -p _build; \
	RESNET_BOOK_DATASET=standin setsid $(MAKE) --no-print-directory runs > _build/runs-standin.log 2>&1 & standin=$$!; \
	trap 'kill -- -$$standin 2>/dev/null || true' EXIT; \
	$(MAKE) --no-print-directory book; \
	wait $$standin || { cat _build/runs-standin.log; echo "make: training the stand-in's nets failed"; exit 1; }; \
	trap - EXIT; tr '\r' '\n' < _build/runs-standin.log | grep -v '^training on\|^ *$$' || true
	@$(START); RESNET_BOOK_DATASET=standin RESNET_BOOK_REQUIRE_BUILD=1 $(PY) -m pytest tests book --nbval-lax \
	  -n auto --dist loadfile --durations=20; \
	echo "[stage] pytest (unit + browser + every notebook on the stand-in; a worker per core): $$(( $$(date +%s) - start )) s"

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check resnet_lib tests benchmarks

clean:
	rm -rf _build _results

# JupyterLab on the chapters, with the profile and results cache that `make book` used
# (PROFILE, default ci, and _results/), so training runs the build finished are reused.
lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=book $$( [ "$$(id -u)" != 0 ] || echo --allow-root )
