# ImgLink: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
IMGLINK_DATA_DIR ?= ./data
export IMGLINK_DATA_DIR

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run test fuzz bench clean

help: ## List the targets with one line each
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP) ## Create .venv if needed and install ImgLink with its test tools (only when setup.cfg changed)

run: $(STAMP) ## Serve ImgLink with gunicorn on HOST:PORT (127.0.0.1:8000), data in IMGLINK_DATA_DIR (./data)
	$(BIN)/gunicorn --config gunicorn.conf.py --bind '$(HOST):$(PORT)' wsgi:app

test: $(STAMP) ## Run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

fuzz: $(STAMP) ## Fuzz uploads for longer than CI does (IMGLINK_FUZZ_EXAMPLES, default 20000)
	IMGLINK_FUZZ_EXAMPLES=$${IMGLINK_FUZZ_EXAMPLES:-20000} $(BIN)/python -m pytest -q tests/test_fuzz.py

bench: $(STAMP) ## Measure uploads and serving against this machine's floors (nginx, wrk); BENCH_ARGS="--quick"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean: ## Remove the virtualenv and caches (keeps ./data)
	rm -rf $(VENV) .pytest_cache build *.egg-info
