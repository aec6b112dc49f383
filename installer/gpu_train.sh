#!/usr/bin/env bash
# Train the reference-v2 recipe on a lent GPU: SmolLM2-135M first, then Gemma 3 270M when the
# time left allows, choose base and epoch on the development split, return the chosen adapter
# (see models/README.md, "Training on a GPU"). One device call carries at most 64 MiB with
# the repository, so the base GGUFs travel as pieces, one call each (Gemma slimmed first:
# noteward.training.carry); the stash calls leave their piece on the machine, the last call
# brings the last piece, the prepared sets and the pure-Python packages the box lacks, and
# trains. Make the calls one after another at once (a machine stays warm 30 s).
#
#   installer/gpu_train.sh prepare [finetune flags...]   # here: fills gpu_carry/, prints the call plan
#   installer/gpu_train.sh stash                         # device calls 1..N-1, each carrying its piece
#   installer/gpu_train.sh run [gpu_job flags...]        # device call N (carry: see the plan)
#   noteward finetune --base B --name NAME ... --from-job DIR --merge Q8_0   # here, DIR = the call's files_at
#
# NOTEWARD_GPU_BASES: "BASE_ID:NAME ..." (default both bases); NOTEWARD_GPU_BUDGET_S: seconds
# the run call may take (default 540, under a call's 600 s limit).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${NOTEWARD_GPU_CARRY:-gpu_carry}
STASH=${NOTEWARD_GPU_STASH:-/root/noteward-gpu}
BASES=${NOTEWARD_GPU_BASES:-"smollm2-135m-instruct-q4_1:smollm2-135m-reference gemma3-270m-q4_k_m:gemma3-270m-reference"}
CALL_LIMIT=67108864   # 64 MiB: the repository and everything carried
MARGIN=2000000        # for files the repository gains before the GPU session

# The recipe's defaults per base (later flags override them). SmolLM2: the issue's H100
# run (full fine-tune, lr 1e-4, batch 16) with 4 epochs scored one by one; Gemma 3: its
# 262,144-token output needs smaller micro-batches at 4,096 tokens, and a lower rate.
defaults_for() {
    case "$1" in
    gemma3*) echo "--full --rank 64 --lr 5e-5 --batch 2 --grad-accum 8 --epochs 3 --max-seq-len 4096" ;;
    *) echo "--full --rank 64 --lr 1e-4 --batch 8 --grad-accum 2 --epochs 4 --max-seq-len 4096" ;;
    esac
}

case "${1:-}" in
prepare)
    shift
    PY=${PY:-.venv/bin/python}
    export PYTHONPATH="$PWD/app${PYTHONPATH:+:$PYTHONPATH}"
    rm -rf "$CARRY" && mkdir -p "$CARRY/bundle" "$CARRY/pieces" "$CARRY/files"
    : > "$CARRY/bundle/runs"
    FILES=()
    for pair in $BASES; do
        BASE_ID=${pair%%:*}
        NAME=${pair#*:}
        # shellcheck disable=SC2046
        "$PY" -m noteward.cli finetune --base "$BASE_ID" --data mts-dialog,aci-bench,meqsum,synthea \
            --recipe reference-v2 --name "$NAME" $(defaults_for "$BASE_ID") --prepare-only --json "$@" \
            > "$CARRY/$NAME.prepare.json"
        WORK=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['workdir'])" "$CARRY/$NAME.prepare.json")
        BASE=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['base_gguf'])" "$CARRY/$NAME.prepare.json")
        mkdir -p "$CARRY/bundle/$NAME"
        cp "$WORK/encoded.npz" "$WORK/dev.json" "$WORK/config.json" "$CARRY/bundle/$NAME/"
        case "$BASE_ID" in
        gemma3*)
            # two thirds of Gemma is its 262,144-row embedding: carry the rows the data uses
            SLIM="$CARRY/files/$NAME.gguf.zip"
            "$PY" -m noteward.training.carry slim "$CARRY/bundle/$NAME" "$BASE" "$SLIM" > "$CARRY/bundle/$NAME/slim.json"
            echo "$NAME $(basename "$SLIM") slim $BASE_ID" >> "$CARRY/bundle/runs"
            FILES+=("$SLIM")
            ;;
        *)
            echo "$NAME $(basename "$BASE") gguf $BASE_ID" >> "$CARRY/bundle/runs"
            FILES+=("$BASE")
            ;;
        esac
    done
    # Pure-Python packages the GPU box lacks: gguf (adapter export), rouge-score and what
    # its Porter stemmer imports (scoring each epoch).
    "$PY" - "$CARRY/site.zip" <<'EOF'
import importlib.util, pathlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for name in ("gguf", "rouge_score", "nltk", "absl", "six", "joblib", "click", "yaml"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = pathlib.Path(spec.origin)
        root = origin.parent if origin.name == "__init__.py" else origin
        # the package and its dist-info: transformers checks gguf's version through its metadata
        dist = [d for d in root.parent.glob("*.dist-info") if d.name.split("-")[0].lower().replace("_", "-")
                == {"rouge_score": "rouge-score", "yaml": "pyyaml", "absl": "absl-py"}.get(name, name)]
        for top in [root, *dist]:
            for f in ([top] if top.is_file() else sorted(top.rglob("*"))):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".so":
                    z.write(f, f.relative_to(root.parent))
EOF
    # What a call carries besides: the repository as it travels (tracked and untracked, not ignored).
    REPO=$(git ls-files -co --exclude-standard -z | du --files0-from=- -cb 2>/dev/null | tail -1 | cut -f1)
    PIECE=${NOTEWARD_GPU_PIECE_BYTES:-$((CALL_LIMIT - REPO - MARGIN))}
    "$PY" -m noteward.training.carry pack "$CARRY/pieces" "$PIECE" "${FILES[@]}" > /dev/null
    mv "$CARRY/pieces/pack.json" "$CARRY/bundle/pack.json"
    rm -rf "$CARRY/files"
    EXTRA=$(du -cb "$CARRY/bundle" "$CARRY/site.zip" | tail -1 | cut -f1)
    PIECES=("$CARRY"/pieces/piece.*)
    LAST=${PIECES[-1]}
    LAST_SIZE=$(stat -c %s "$LAST")
    echo "repository as it travels: $REPO bytes; a piece: at most $PIECE bytes; bundle + site.zip: $EXTRA bytes"
    N=0
    if [ $((REPO + LAST_SIZE + EXTRA)) -le $CALL_LIMIT ]; then STASHED=("${PIECES[@]:0:${#PIECES[@]}-1}"); RUNCARRY="$LAST"
    else STASHED=("${PIECES[@]}"); RUNCARRY=""; fi
    for p in "${STASHED[@]}"; do
        N=$((N + 1))
        echo "call $N: installer/gpu_train.sh stash   carry: $p   ($((REPO + $(stat -c %s "$p"))) bytes with the repository)"
    done
    N=$((N + 1))
    RUN_BYTES=$((REPO + EXTRA + ${RUNCARRY:+$(stat -c %s "$RUNCARRY")}+0))
    echo "call $N: installer/gpu_train.sh run     carry: ${RUNCARRY:+$RUNCARRY }$CARRY/bundle $CARRY/site.zip   ($RUN_BYTES bytes with the repository)"
    ;;
stash)
    mkdir -p "$STASH"
    for p in "$CARRY"/pieces/piece.*; do [ -f "$p" ] && cp "$p" "$STASH/"; done
    ls -l "$STASH"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    ${PY:-python3} -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.is_available())"
    ;;
run)
    shift
    : "${OUT:?run this on the device machine, where \$OUT is set}"
    T0=$(date +%s)
    BUDGET=${NOTEWARD_GPU_BUDGET_S:-540}
    DEADLINE=$((T0 + BUDGET))
    PY=${PY:-python3}
    mkdir -p "$STASH"
    for p in "$CARRY"/pieces/piece.*; do [ -f "$p" ] && cp "$p" "$STASH/"; done
    SITE="$STASH/site" && rm -rf "$SITE" && mkdir -p "$SITE"
    "$PY" -m zipfile -e "$CARRY/site.zip" "$SITE"
    export PYTHONPATH="$PWD/app:$SITE"
    {
        echo "budget: $BUDGET s for this call (deadline $(date -u -d "@$DEADLINE" +%H:%M:%S) UTC)"
        "$PY" -m noteward.training.carry unpack "$STASH" "$CARRY/bundle/pack.json" "$STASH/files"
        RUNS=()
        PREV=()
        while read -r NAME FILE KIND BASE_ID; do
            if [ "$KIND" = slim ]; then
                SHA=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['sha256'])" "$CARRY/bundle/$NAME/slim.json")
                GGUF=$("$PY" -c "import sys; from pathlib import Path; from noteward.training.carry import unslim; print(unslim(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))" "$STASH/files/$FILE" "$STASH/files" "$SHA")
            else
                GGUF="$STASH/files/$FILE"
            fi
            RUN="$STASH/runs/$NAME" && rm -rf "$RUN"
            "$PY" -m noteward.training.gpu_job "$CARRY/bundle/$NAME" --base-gguf "$GGUF" --out "$RUN" \
                --name "$NAME" --base-id "$BASE_ID" --device cuda --deadline "$DEADLINE" --dev-score shipped "${PREV[@]}" "$@" \
                || echo "$NAME: the job failed (exit $?); the other bases go on"
            RUNS+=("$RUN")
            [ -f "$RUN/job.json" ] && PREV=(--reference "$RUN/job.json")
        done < "$CARRY/bundle/runs"
        "$PY" -m noteward.training.gpu_job collect "$OUT" "${RUNS[@]}"
        echo "wall seconds on the device: $(( $(date +%s) - T0 ))"
    } 2>&1 | tee "$OUT/log.txt"
    ls -l "$OUT"
    ;;
*)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
