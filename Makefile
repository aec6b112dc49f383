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
	$(BIN)/mypy app/noteward
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/noteward bench import

# Render the desktop client's main screens to docs/screenshots/*.png (offscreen, real app,
# throwaway vault, shared Synthea data).
screenshots: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m noteward.ui.screenshots

# Rebuild the shipped fine-tuned summarizer from ../shared/data on the CPU (30-90 minutes,
# checkpointed: rerun the first command with --resume after an interruption), evaluate it
# against the base models and copy adapter, model card and manifest entry into models/.
model: install
	$(BIN)/noteward finetune --base smollm2-135m-instruct-q4_1 \
	  --data mts-dialog,aci-bench,meqsum,synthea --name smollm2-135m-clinical \
	  --max-steps 205 --time-budget 5400 --batch 2 --grad-accum 2 --max-seq-len 640 \
	  --lr 4e-4 --modules all-linear
	$(BIN)/noteward eval finetune --model smollm2-135m-clinical --limit 5 --ship

clean:
	rm -rf $(VENV) build *.egg-info
