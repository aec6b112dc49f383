#!/usr/bin/env bash
# Train the reference-v2 recipe on a lent GPU in two device calls (see models/README.md,
# "Training on a GPU"). One call carries at most 64 MiB with the repository (11.6 MB), so the
# 98 MB base GGUF travels in two pieces: call 1 leaves piece 1 on the machine, call 2 (made
# at once: a machine stays warm 30 s) brings piece 2, the prepared set and the pure-Python
# packages the box lacks, trains, scores every epoch on the development split and writes
# the adapter, the curve and the timings to $OUT.
#
#   installer/gpu_train.sh prepare [NAME] [finetune flags...]   # here: fills gpu_carry/
#   installer/gpu_train.sh stash                                # device call 1, carry gpu_carry/base.part1
#   installer/gpu_train.sh run [gpu_job flags...]               # device call 2, carry gpu_carry/{base.part2,bundle,site.zip}
#   noteward finetune ... --name NAME --from-job DIR --merge Q8_0   # here, DIR = the call's files_at
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${NOTEWARD_GPU_CARRY:-gpu_carry}
STASH=${NOTEWARD_GPU_STASH:-/root/noteward-gpu}
# Call 1 carries the repository (12.0 MB) and piece 1: 52 MB leaves 3 MB to spare under 64 MiB;
# call 2 carries piece 2 (46.4 MB), the bundle (1.7 MB) and site.zip (2.5 MB).
PART1_BYTES=52000000

case "${1:-}" in
prepare)
    shift
    NAME=${1:-smollm2-135m-reference}
    shift || true
    PY=${PY:-.venv/bin/python}
    mkdir -p "$(dirname "$CARRY")"
    export PYTHONPATH="$PWD/app${PYTHONPATH:+:$PYTHONPATH}"
    # The recipe's defaults for the GPU run; later flags override them.
    "$PY" -m noteward.cli finetune --base smollm2-135m-instruct-q4_1 \
        --data mts-dialog,aci-bench,meqsum,synthea --recipe reference-v2 --name "$NAME" \
        --rank 64 --modules all-linear --lr 2e-4 --batch 8 --grad-accum 2 --epochs 4 \
        --max-seq-len 4096 --prepare-only --json "$@" > "$CARRY.prepare.json"
    WORK=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['workdir'])" "$CARRY.prepare.json")
    BASE=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['base_gguf'])" "$CARRY.prepare.json")
    rm -rf "$CARRY" && mkdir -p "$CARRY/bundle/$NAME"  # (its parent exists: the line above wrote there)
    cp "$WORK/encoded.npz" "$WORK/dev.json" "$WORK/config.json" "$CARRY/bundle/$NAME/"
    head -c "$PART1_BYTES" "$BASE" > "$CARRY/base.part1"
    tail -c +"$((PART1_BYTES + 1))" "$BASE" > "$CARRY/base.part2"
    sha256sum "$BASE" | cut -d' ' -f1 > "$CARRY/bundle/base.sha256"
    basename "$BASE" > "$CARRY/bundle/base.name"
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
    echo "$NAME" > "$CARRY/bundle/name"
    du -cb "$CARRY/base.part1" | tail -1
    du -cb "$CARRY/base.part2" "$CARRY/bundle" "$CARRY/site.zip" | tail -1
    echo "call 1: installer/gpu_train.sh stash   carry: $CARRY/base.part1"
    echo "call 2: installer/gpu_train.sh run     carry: $CARRY/base.part2 $CARRY/bundle $CARRY/site.zip"
    ;;
stash)
    mkdir -p "$STASH"
    cp "$CARRY/base.part1" "$STASH/base.part1"
    ls -l "$STASH"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    ${PY:-python} -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.is_available())"
    ;;
run)
    shift
    : "${OUT:?run this on the device machine, where \$OUT is set}"
    NAME=$(cat "$CARRY/bundle/name")
    BASE="$STASH/$(cat "$CARRY/bundle/base.name")"
    if [ -f "$CARRY/base.part1" ]; then P1="$CARRY/base.part1"; else P1="$STASH/base.part1"; fi
    cat "$P1" "$CARRY/base.part2" > "$BASE"
    echo "$(cat "$CARRY/bundle/base.sha256")  $BASE" | sha256sum -c -
    SITE="$STASH/site" && rm -rf "$SITE" && mkdir -p "$SITE"
    PY=${PY:-python}
    "$PY" -m zipfile -e "$CARRY/site.zip" "$SITE"
    T0=$(date +%s)
    PYTHONPATH="$PWD/app" "$PY" -m noteward.training.gpu_job "$CARRY/bundle/$NAME" \
        --base-gguf "$BASE" --out "$OUT" --site "$SITE" --name "$NAME" --device cuda "$@" 2>&1 | tail -c 20000 > "$OUT/log.txt"
    tail -n 30 "$OUT/log.txt"
    echo "wall seconds on the device: $(( $(date +%s) - T0 ))"
    ;;
*)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
