# Two commands on a fresh machine: `make run` and `make test`. Everything else is here
# for developers and IT staff.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
REQS    := requirements/base.txt requirements/dev.txt requirements/train.txt

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint bench screenshots model clean

$(STAMP): $(REQS) pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# llama-cpp-python compiles from source once; pip keeps the built wheel in its cache.
	$(BIN)/python -m pip install -r requirements/dev.txt -r requirements/train.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

run: install
	$(BIN)/noteward demo

test: install
	$(BIN)/ruff check app tests
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/noteward bench import

clean:
	rm -rf $(VENV) build *.egg-info
