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

.PHONY: install run test lint bench screenshots model clean faults dist dist-check bench-dist

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

# ---- The signed desktop bundle for IT (installer/README.md says what and why) ----------------
# `make dist`: PyInstaller one-folder bundle (no Python needed on the target), packaged as
# dist/noteward_VERSION-REV_amd64.deb and dist/noteward-VERSION-REV-linux-x86_64.tar.gz, with
# SHA256SUMS, SHA256SUMS.sig (Ed25519) and a CycloneDX SBOM. Signing key: NOTEWARD_SIGNING_KEY
# (PEM text) or NOTEWARD_SIGNING_KEY_FILE (passphrase-protected PEM, passphrase from
# NOTEWARD_SIGNING_KEY_PASSPHRASE or asked); with neither, a one-off key signs and only its
# public half is kept (a development build, said so in dist/). Everything is built under
# build/dist in its own venvs: the project's .venv and pip's cache are not touched.
DIST_BUILD  := build/dist
DIST_VENV   := $(DIST_BUILD)/venv
DIST_TOOLS  := $(DIST_BUILD)/tools
DIST_STAMP  := $(DIST_VENV)/.installed
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN   := $(shell sed -n 's/^torch==/torch==/p' requirements/dist.txt)
DIST_REVISION ?= 1

$(DIST_BUILD)/wheels/.built: requirements/base.txt installer/build_llama_wheel.sh
	PY=$(PY) installer/build_llama_wheel.sh $(DIST_BUILD)/wheels
	touch $@

# torch first and alone with PyTorch's CPU index named here (not left to pip's configuration).
$(DIST_STAMP): requirements/base.txt requirements/dist.txt pyproject.toml $(DIST_BUILD)/wheels/.built
	test -x $(DIST_VENV)/bin/python || $(PY) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install -q --no-cache-dir --retries 1 --extra-index-url $(TORCH_INDEX) '$(TORCH_PIN)'
	$(DIST_VENV)/bin/python -m pip install -q --no-cache-dir -r requirements/dist.txt $(DIST_BUILD)/wheels/llama_cpp_python-*.whl
	$(DIST_VENV)/bin/python -m pip install -q --no-cache-dir --no-deps --no-build-isolation .
	touch $@

$(DIST_TOOLS)/.installed: requirements/dist-tools.txt
	test -x $(DIST_TOOLS)/bin/python || $(PY) -m venv $(DIST_TOOLS)
	$(DIST_TOOLS)/bin/python -m pip install -q -r requirements/dist-tools.txt
	touch $@

dist: $(DIST_STAMP) $(DIST_TOOLS)/.installed
	$(DIST_VENV)/bin/python -m PyInstaller --noconfirm --log-level WARN \
	  --distpath $(DIST_BUILD)/pyi --workpath $(DIST_BUILD)/pyi-work installer/pyinstaller/noteward.spec
	$(DIST_VENV)/bin/python installer/package.py build --bundle $(DIST_BUILD)/pyi/noteward \
	  --out dist --revision $(DIST_REVISION) --work $(DIST_BUILD)/pkg \
	  --cyclonedx $(DIST_TOOLS)/bin/cyclonedx-py --env-python $(DIST_VENV)/bin/python

# Installs dist/'s .deb with dpkg into a throw-away root and runs it there (see installer/README.md).
dist-check: $(DIST_STAMP)
	$(DIST_VENV)/bin/python installer/dist_check.py dist --smoke --work $(DIST_BUILD)/check

# Bundle size, installed size, start to the unlock dialog (warm and cold disk cache).
bench-dist: $(DIST_STAMP)
	$(DIST_VENV)/bin/python installer/bench_dist.py dist --work $(DIST_BUILD)/bench

clean:
	rm -rf $(VENV) build *.egg-info
