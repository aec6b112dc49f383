"""Train a prepared reference-v2 run on a GPU and score every epoch on the development split.

``python -m noteward.training.gpu_job BUNDLE --base-gguf BASE --out OUT``

``BUNDLE`` is the work folder that ``noteward finetune --recipe reference-v2 ... --prepare-only``
writes (``encoded.pt``, ``dev.json``, ``config.json``). The job needs torch, transformers
and peft; gguf (to write the adapter) and rouge-score (to score the epochs) are pure
Python and may be carried beside it (``--site DIR`` puts DIR first on the import path).
It writes into ``OUT``:

- ``curve.json``: per epoch the training loss, the development ROUGE-1/2/L/Lsum (MTS-Dialog,
  each ACI-Bench division, the whole ACI-Bench note) and the copied-4-gram share; for a full
  fine-tune twice: of the float weights (``dev``) and of the rank-r extraction that ships,
  merged back into the base (``dev_extracted``, with ``extraction_kept``);
- ``dev-outputs.json``: the development generations of every epoch (so they can be scored
  again where rouge-score is installed: ``noteward finetune --from-job OUT``);
- ``<name>-lora.gguf.partNN``: the adapter of the chosen epoch (highest mean of MTS-Dialog
  ROUGE-L and ACI-Bench whole-note ROUGE-Lsum of what ships: the extraction's scores for a
  full fine-tune; the last epoch when the outputs could not be scored), in pieces of at most 15 MiB because the device returns files of 16 MiB at
  most; ``--from-job`` joins them and checks the sha256 in ``job.json``. A full fine-tune
  ships as a low-rank extraction of its weight update;
- ``job.json``: configuration, chosen epoch, timings (model load, training, development
  scoring, the whole job: the GPU seconds it took) and the device.

Development figures come from transformers (the float weights and, for a full fine-tune,
the extraction merged back in torch); the shipped artifact (merged at Q8_0, run by
llama.cpp) is scored by ``noteward eval summarize``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

DEV_OUTPUTS = "dev-outputs.json"
PART_BYTES = 15 * 1024 * 1024

# Device-time model (H100), for the estimate printed at the start and the skip decision:
# - training: the figure, a full fine-tune of SmolLM2-135M on the 1,201 MTS-Dialog
#   training pairs (REF_TOKENS tokens), 3 epochs, batch 16, about 80 s on an H100;
# - other bases cost RELATIVE_COST times as much per token, measured here on the CPU with the
#   same tiny run on each base (seconds per training token);
# - development scoring: ceil(items / dev batch) batches of up to dev_max_new_tokens greedy
#   steps at DEV_STEP_S each (transformers' generate; an assumption, corrected by --reference);
# - loading the base (de-quantizing the GGUF in numpy) and the export (SVD of every update).
# (REF_TOKENS: SmolLM2's tokens of the 1,100 MTS-Dialog training pairs of reference-v2,
# 283,275, scaled to 1,201; the 80 s include the model load, so the rate is a floor.)
REF_TOKENS = 309_300
REF_SECONDS = 80.0
# Gemma 3 270M / SmolLM2-135M seconds per training token on the CPU, same tiny full fine-tune
# (tests/training/test_gpu_job.py: 0.0864 / 0.0386 s; 2 busy cores, so +-20%)
RELATIVE_COST = {"llama": 1.0, "gemma3": 2.2}
DEV_STEP_S = 0.03
# de-quantizing and converting the tokenizer (Gemma's 262,144 tokens: 89 s on 2 busy cores here)
LOAD_S = {"llama": 20.0, "gemma3": 90.0}
EXPORT_S = 20.0
# a full fine-tune's extraction (SVD of every update) and merge-back, before its second dev pass
EXTRACT_S = 10.0


def estimate(
    encoded: list[tuple[list[int], list[int]]], cfg: Any, dev_items: int, arch: str, reference: Path | None = None,
    dev_passes: int = 1,
) -> dict[str, float]:
    """Seconds this job should take on an H100 (see the constants above), by part.

    ``dev_passes``: development passes per epoch (2 when a full fine-tune scores both its
    float weights and the extraction that ships)."""
    import math

    tokens = sum(len(ids) for ids, _ in encoded)
    epochs = max(1, int(cfg.epochs or 1))
    cost = RELATIVE_COST.get(arch, 2.0)
    train_s = tokens * epochs / (3 * REF_TOKENS / REF_SECONDS) * cost
    dev_s = math.ceil(dev_items / 48) * int(cfg.dev_max_new_tokens) * DEV_STEP_S
    if getattr(cfg, "full", False):  # the rank-r extraction is scored (and the float weights with 2 passes)
        dev_s = dev_passes * dev_s + EXTRACT_S
    factor = 1.0
    if reference is not None and reference.exists():  # a job that ran on this machine: scale by its error
        ref = json.loads(reference.read_text(encoding="utf-8"))
        est, timing = ref.get("estimate") or {}, ref.get("timing") or {}
        if est.get("total_s") and timing.get("job_s"):
            factor = float(timing["job_s"]) / float(est["total_s"])
    load_s = LOAD_S.get(arch, 30.0)
    total = (load_s + train_s + dev_s * epochs + EXPORT_S) * factor
    one_epoch = (load_s + train_s / epochs + dev_s + EXPORT_S) * factor
    return {"load_s": round(load_s * factor, 1), "train_s": round(train_s * factor, 1),
            "dev_s_per_epoch": round(dev_s * factor, 1), "epochs": epochs, "tokens": tokens,
            "factor": round(factor, 3), "total_s": round(total, 1), "one_epoch_s": round(one_epoch, 1)}


def _sha256(path: Path) -> str:
    # carry's (standard library only at import, so it runs on the bare GPU machine too)
    from noteward.training.carry import sha256

    return sha256(path)


def split_file(path: Path, part_bytes: int) -> list[str]:
    """Cut ``path`` into ``<name>.part00``, ``.part01``, ... of at most ``part_bytes``; remove it."""
    names: list[str] = []
    with path.open("rb") as fh:
        for n, block in enumerate(iter(lambda: fh.read(part_bytes), b"")):
            part = path.with_name(f"{path.name}.part{n:02d}")
            part.write_bytes(block)
            names.append(part.name)
    path.unlink()
    return names


def join_parts(folder: Path, names: list[str], out: Path, sha256: str) -> Path:
    """Join the parts ``split_file`` wrote into ``out``; raise ValueError on a hash mismatch."""
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as fh:
        for name in names:
            fh.write((folder / name).read_bytes())
    if _sha256(tmp) != sha256:
        tmp.unlink()
        raise ValueError(f"the joined {out.name} does not match its recorded sha256")
    tmp.replace(out)
    return out


def _shipped_dev(row: dict[str, Any]) -> dict[str, Any]:
    """The development scores of what ships at this epoch: the extraction's for a full
    fine-tune (``dev_extracted``), else the trained LoRA's own (``dev``)."""
    return row.get("dev_extracted") or row.get("dev") or {}


def _choose(curve: list[dict[str, Any]]) -> int:
    """Index of the epoch to ship: best mean of MTS ROUGE-L and ACI whole-note ROUGE-Lsum
    of what ships (the rank-r extraction of a full fine-tune, scored as such)."""

    def key(row: dict[str, Any]) -> float:
        dev = _shipped_dev(row)
        raw = [
            (dev.get("mts_dialog") or {}).get("rougeL"),
            (dev.get("aci_bench/whole_note") or {}).get("rougeLsum"),
        ]
        vals = [float(v) for v in raw if v is not None]
        return sum(vals) / len(vals) if vals else float("-inf")

    scores = [key(r) for r in curve]
    if not scores or max(scores) == float("-inf"):
        return len(curve) - 1
    return max(range(len(curve)), key=lambda i: (scores[i], -i))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m noteward.training.gpu_job", description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path, help="the prepared run folder (encoded.pt, dev.json)")
    p.add_argument("--base-gguf", type=Path, required=True, help="the base model's GGUF file")
    p.add_argument("--out", type=Path, required=True, help="folder for the adapter, curve and timings")
    p.add_argument("--site", type=Path, action="append", default=[], help="extra import folder (carried gguf, rouge-score)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--name", default="", help="adapter name (default: the bundle folder's name)")
    p.add_argument("--base-id", default="", help="the base's manifest id (recorded for `finetune --from-job`)")
    p.add_argument("--epochs", type=int, help="override the prepared number of epochs")
    p.add_argument("--lr", type=float, help="override the learning rate")
    p.add_argument("--rank", type=int, help="override the LoRA / extraction rank")
    p.add_argument("--batch", type=int, help="override the micro-batch size")
    p.add_argument("--grad-accum", type=int, help="override the micro-batches per step")
    p.add_argument("--full", action="store_true", help="full fine-tune of the linear layers")
    p.add_argument("--dev-batch", type=int, default=48, help="development prompts generated together")
    p.add_argument("--dev-items", type=int, help="score only the first N development items (quick runs)")
    p.add_argument(
        "--dev-score", choices=("both", "shipped"), default="both",
        help="full fine-tunes: score the float weights and the rank-r extraction that ships (both), or only "
        "the extraction (shipped: half the development time); the epoch is chosen on the extraction either way",
    )
    p.add_argument("--dev-max-new-tokens", type=int, help="generation cap on the development split")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--deadline", type=float, default=0.0,
        help="Unix time by which the job must have written its files: it is skipped when its estimate "
        "does not fit, and training stops early (at a checkpointed step) when it runs late",
    )
    p.add_argument("--reference", type=Path, help="job.json of a job that ran before on this machine: "
                   "its measured speed corrects this job's estimate")
    args = p.parse_args(argv)
    for site in args.site:
        sys.path.insert(0, str(site.resolve()))
    t_job = time.monotonic()

    from noteward.training import dev_eval, export, job, trainer

    encoded, pad_id, cfg = job.load_encoded(args.bundle)
    cfg.device = args.device
    for field_name, value in (
        ("epochs", args.epochs), ("learning_rate", args.lr), ("rank", args.rank),
        ("micro_batch", args.batch), ("grad_accum", args.grad_accum), ("dev_max_new_tokens", args.dev_max_new_tokens),
    ):
        if value is not None:
            setattr(cfg, field_name, value)
    if args.rank is not None:
        cfg.alpha = 2 * args.rank
    cfg.full = cfg.full or args.full
    if args.threads:
        cfg.threads = args.threads
    cfg.checkpoint_every = 10**9  # the job keeps the best epoch in memory, not checkpoints
    name = args.name or args.bundle.name
    dev_items = dev_eval.load_dev(args.bundle)[: args.dev_items]
    args.out.mkdir(parents=True, exist_ok=True)
    est = estimate(encoded, cfg, len(dev_items), trainer.gguf_architecture(args.base_gguf), args.reference,
                   dev_passes=2 if cfg.full and args.dev_score == "both" else 1)
    print(f"{name}: estimate {est['total_s']:.0f} s on an H100, {est['one_epoch_s']:.0f} s for one epoch "
          f"({json.dumps(est)})", flush=True)
    if args.deadline:
        left = args.deadline - time.time()
        if est["one_epoch_s"] > left:  # not even one scored epoch fits
            skipped = {"name": name, "base": args.base_id, "estimate": est,
                       "skipped": f"estimate {est['one_epoch_s']:.0f} s for one epoch > {left:.0f} s left"}
            (args.out / "job.json").write_text(json.dumps(skipped, indent=2), encoding="utf-8")
            print(f"{name}: skipped, {skipped['skipped']}", flush=True)
            return 0
        # stop training (checkpointed, last epoch's weights kept) when it runs late: leave
        # room for one development pass and the export
        cfg.time_budget_s = max(1.0, left - est["load_s"] - est["dev_s_per_epoch"] - EXPORT_S)

    t0 = time.monotonic()
    model, tok = trainer.load_base(args.base_gguf, cfg.threads)
    masked = trainer.mask_unused_vocab(model)
    load_s = time.monotonic() - t0
    base_linear = trainer.lora_state(model) if cfg.full else {}
    eot = trainer.end_of_turn(tok, "chat")
    curve: list[dict[str, Any]] = []
    states: dict[int, dict[str, Any]] = {}
    eval_s = [0.0]

    outputs: dict[str, list[dict[str, str]]] = {}

    def on_epoch(m: Any, state: dict[str, Any]) -> None:
        t = time.monotonic()
        gen = {"max_new_tokens": cfg.dev_max_new_tokens, "batch": args.dev_batch}
        # a full fine-tune ships a rank-r extraction of its update: score that as well (or only that)
        ex = dev_eval.evaluate_extraction(m, tok, dev_items, eot, base_linear, cfg.rank, **gen) if cfg.full else None
        float_too = ex is None or args.dev_score == "both"
        ev: dict[str, Any] = (
            dev_eval.evaluate(m, tok, dev_items, eot, **gen) if float_too else {"scores": {}, "outputs": [], "scored": False}
        )
        eval_s[0] += time.monotonic() - t
        n = int(state["epoch"])
        if float_too:
            outputs[str(n)] = [{"ref": it["ref"], "output": o} for it, o in zip(dev_items, ev["outputs"], strict=True)]
        if ex is not None:
            outputs[f"{n}-extracted"] = [
                {"ref": it["ref"], "output": o} for it, o in zip(dev_items, ex["outputs"], strict=True)
            ]
        (args.out / DEV_OUTPUTS).write_text(json.dumps(outputs), encoding="utf-8")
        row: dict[str, Any] = {
            "epoch": n, "step": state["step"], "train_loss": state["epoch_losses"][-1],
            "elapsed_s": round(state["seconds"] + time.monotonic() - t, 1),
            "dev_seconds": round(time.monotonic() - t, 1), "scored": ev["scored"], "dev": ev["scores"],
        }
        if ex is not None:
            row.update({"dev_extracted": ex["scores"], "scored_extracted": ex["scored"],
                        "extraction_kept": ex["extraction_kept"], "extract_seconds": ex["extract_seconds"]})
        curve.append(row)
        (args.out / "curve.json").write_text(json.dumps(curve, indent=2), encoding="utf-8")
        if _choose(curve) == len(curve) - 1:  # the best so far: keep its weights (CPU, float16)
            states.clear()
            states[n] = {k: v.half() for k, v in trainer.lora_state(m).items()}
        print(f"epoch {n}: loss {curve[-1]['train_loss']} dev {json.dumps(ev['scores'])[:400]}", flush=True)
        if ex is not None:
            print(f"epoch {n}: rank-{cfg.rank} extracted (keeps {ex['extraction_kept']} of the update), what ships: "
                  f"dev {json.dumps(ex['scores'])[:400]}", flush=True)

    def progress(step: int, total: int, loss: float) -> None:
        if step == 1 or step % 50 == 0 or step == total:
            print(f"step {step}/{total} loss {loss:.4f} ({time.monotonic() - t_job:.0f} s)", flush=True)

    model, result = trainer.train_encoded(
        model, encoded, pad_id, cfg, args.out / "work", progress=progress, show_bar=False, on_epoch=on_epoch
    )
    chosen = curve[_choose(curve)]["epoch"] if curve else None
    record: dict[str, Any] = {"name": name, "base": args.base_id, "config": asdict(cfg), "examples": len(encoded), "dev_items": len(dev_items),
                              "arch": export.gguf_arch(model.config), "masked_tokens": masked, "estimate": est,
                              "train_tokens": sum(len(ids) for ids, _ in encoded),
                              # the epoch (and, in collect, the base) is chosen on what ships
                              "chosen_on": "extracted" if cfg.full else "float"}
    import torch

    if chosen is not None and chosen in states:
        weights = {k: v.float() for k, v in states[chosen].items()}
        if cfg.full:
            lora = export.lora_from_delta(base_linear, weights, cfg.rank)
            record["extraction_kept"] = round(export.delta_kept(base_linear, weights, lora), 4)
            alpha = float(cfg.rank)
        else:
            lora = {k: v for k, v in weights.items() if ".lora_A." in k or ".lora_B." in k}
            alpha = float(cfg.alpha)
        path = export.export_lora_gguf(lora, model.config, alpha, args.out / f"{name}-lora.gguf", name=name)
        record["adapter"] = {"file": path.name, "sha256": _sha256(path), "size": path.stat().st_size,
                             "parts": split_file(path, PART_BYTES)}
    shutil.rmtree(args.out / "work", ignore_errors=True)  # optimizer checkpoint: not needed back
    record.update(
        {
            "chosen_epoch": chosen,
            "curve": curve,
            "train": {k: v for k, v in asdict(result).items() if k != "losses"},
            "losses": result.losses,
            "timing": {
                "load_s": round(load_s, 1),
                "dev_eval_s": round(eval_s[0], 1),
                "train_s": round(result.seconds - eval_s[0], 1),
                "job_s": round(time.monotonic() - t_job, 1),
            },
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        }
    )
    (args.out / "job.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(
        f"{result.steps} steps, {len(curve)} epochs, chosen epoch {chosen}; job {record['timing']['job_s']} s "
        f"on {record['device']}",
        flush=True,
    )
    return 0


def _score(record: dict[str, Any]) -> float:
    """A finished job's development score at its chosen epoch (-inf when none)."""
    curve = record.get("curve") or []
    row = next((r for r in curve if r.get("epoch") == record.get("chosen_epoch")), None)
    if row is None:
        return float("-inf")
    dev = _shipped_dev(row)
    vals = [v for v in ((dev.get("mts_dialog") or {}).get("rougeL"), (dev.get("aci_bench/whole_note") or {}).get("rougeLsum"))
            if v is not None]
    return sum(vals) / len(vals) if vals else float("-inf")


def collect(out: Path, runs: list[Path]) -> dict[str, Any]:
    """Choose the base on the development split and put its files into ``out`` (what comes back).

    Every job wrote into its own folder on the machine; the device returns at most 8 files
    (16 MiB each, 64 MiB together), and two bases' rank-64 adapters do not fit beside each
    other, so only the chosen job's adapter, curve and outputs come back. ``job.json`` is the
    chosen job's record with ``candidates``: every base's chosen epoch, score, curve and
    timings (or why it was skipped).
    """
    records = []
    for run in runs:
        path = run / "job.json"
        if path.exists():
            records.append((run, json.loads(path.read_text(encoding="utf-8"))))
    done = [(run, r) for run, r in records if (r.get("adapter") or {}).get("parts")]
    if not done:
        raise SystemExit("no job finished with an adapter; see log.txt")
    best_run, best = max(done, key=lambda rr: _score(rr[1]))  # first of equals: the order given
    best = dict(best)
    best["candidates"] = [
        {"name": r.get("name"), "base": r.get("base"), "arch": r.get("arch"), "skipped": r.get("skipped"), "chosen_epoch": r.get("chosen_epoch"),
         "dev_score": None if _score(r) == float("-inf") else round(_score(r), 4), "curve": r.get("curve"),
         "timing": r.get("timing"), "estimate": r.get("estimate")}
        for _, r in records
    ]
    best["chosen_base"] = best.get("name")
    out.mkdir(parents=True, exist_ok=True)
    for name in [*best["adapter"]["parts"], "curve.json", DEV_OUTPUTS]:
        if (best_run / name).exists():
            shutil.copyfile(best_run / name, out / name)
    (out / "job.json").write_text(json.dumps(best, indent=2), encoding="utf-8")
    return best


if __name__ == "__main__":
    if sys.argv[1:2] == ["collect"]:  # python -m noteward.training.gpu_job collect OUT RUN...
        chosen = collect(Path(sys.argv[2]), [Path(a) for a in sys.argv[3:]])
        print(f"chosen on the development split: {chosen['name']} epoch {chosen['chosen_epoch']}", flush=True)
        print(
            f"adopt it here: noteward finetune --base {chosen.get('base') or '<its base>'} --name {chosen['name']} "
            "--data mts-dialog,aci-bench,meqsum,synthea --recipe reference-v2 --from-job <files_at> --merge Q8_0",
            flush=True,
        )
        sys.exit(0)
    sys.exit(main())
