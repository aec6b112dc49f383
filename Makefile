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

.PHONY: install run test lint bench screenshots model clean faults

$(STAMP): $(REQS) pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# llama-cpp-python compiles from source once; pip keeps the built wheel in its cache.
	$(BIN)/python -m pip install -r requirements/dev.txt -r requirements/train.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

# The desktop client needs a display and the X libraries Qt links (libxcb-cursor0 and others
# on Debian/Ubuntu): checked first, with the apt-get command for whatever is missing. Without
# any display the demo runs on the command line instead.
run: install
	@$(BIN)/python -m noteward.ui.display
	$(BIN)/noteward demo

test: install
	$(BIN)/ruff check app tests
	$(BIN)/lint-imports
	$(BIN)/mypy app/noteward
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/noteward bench import

# Fault campaign (never part of `make test` or CI; 20 runs take 2.5-7.6 min on two cores,
# so 500 take 1-3 hours; FAULTS_ARGS="--ops import,passwd --seed S" narrows it): N runs that SIGKILL a real `noteward` import, index, summarize, passwd or backup
# at a random moment or fill the disk under it, then check that the vault opens, passes
# `noteward check` and holds exactly the committed data. Exits non-zero on any failure.
N ?= 500
faults: install
	$(BIN)/python -m tests.faults.run_faults --runs $(N) $(FAULTS_ARGS)

# Render the desktop client's main screens to docs/screenshots/*.png (offscreen, real app,
# throwaway vault, shared Synthea data).
screenshots: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m noteward.ui.screenshots

# Rebuild the shipped fine-tuned summarizer from ../shared/data, evaluate it against the base
# models and copy adapter, model card and manifest entry into models/. Trains on a CUDA GPU
# when torch sees one (a few minutes on an H100 or H200), else on the CPU (an estimated 1.5-2 hours on
# two cores; checkpointed: rerun the first command with --resume after an interruption). The shipped
# adapter is step 150 of a 300-step schedule (--stop-after-step), the snapshot that passed the bar.
model: install
	$(BIN)/noteward finetune --base smollm2-135m-instruct-q4_1 \
	  --data mts-dialog,aci-bench,meqsum,synthea --name smollm2-135m-clinical \
	  --verified-targets --aci-window 12 --aci-visit-prompts 4 --rank 16 --modules all-linear \
	  --lr 3e-4 --batch 8 --grad-accum 2 --max-seq-len 1536 --max-steps 300 --stop-after-step 150 \
	  --device auto
	$(BIN)/noteward eval finetune --model smollm2-135m-clinical --limit 10 --ship

clean:
	rm -rf $(VENV) build *.egg-info
