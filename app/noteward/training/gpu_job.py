"""Train a prepared reference-v2 run on a GPU and score every epoch on the development split.

``python -m noteward.training.gpu_job BUNDLE --base-gguf BASE --out OUT``

``BUNDLE`` is the work folder that ``noteward finetune --recipe reference-v2 ... --prepare-only``
writes (``encoded.pt``, ``dev.json``, ``config.json``). The job needs torch, transformers
and peft; gguf (to write the adapter) and rouge-score (to score the epochs) are pure
Python and may be carried beside it (``--site DIR`` puts DIR first on the import path).
It writes into ``OUT``:

- ``curve.json``: per epoch the training loss, the development ROUGE-1/2/L/Lsum (MTS-Dialog,
  each ACI-Bench division, the whole ACI-Bench note) and the copied-4-gram share;
- ``dev-outputs.json``: the development generations of every epoch (so they can be scored
  again where rouge-score is installed: ``noteward finetune --from-job OUT``);
- ``<name>-lora.gguf.partNN``: the adapter of the chosen epoch (highest mean of MTS-Dialog
  ROUGE-L and ACI-Bench whole-note ROUGE-Lsum; the last epoch when the outputs could not
  be scored), in pieces of at most 15 MiB because the device returns files of 16 MiB at
  most; ``--from-job`` joins them and checks the sha256 in ``job.json``. A full fine-tune
  ships as a low-rank extraction of its weight update;
- ``job.json``: configuration, chosen epoch, timings (model load, training, development
  scoring, the whole job: the GPU seconds it took) and the device.

Development figures come from the float weights in memory through transformers; the
shipped artifact (merged at Q8_0, run by llama.cpp) is scored by ``noteward eval summarize``.
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


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def _choose(curve: list[dict[str, Any]]) -> int:
    """Index of the epoch to ship: best mean of MTS ROUGE-L and ACI whole-note ROUGE-Lsum."""

    def key(row: dict[str, Any]) -> float:
        dev = row.get("dev") or {}
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
    p.add_argument("--epochs", type=int, help="override the prepared number of epochs")
    p.add_argument("--lr", type=float, help="override the learning rate")
    p.add_argument("--rank", type=int, help="override the LoRA / extraction rank")
    p.add_argument("--batch", type=int, help="override the micro-batch size")
    p.add_argument("--grad-accum", type=int, help="override the micro-batches per step")
    p.add_argument("--full", action="store_true", help="full fine-tune of the linear layers")
    p.add_argument("--dev-batch", type=int, default=48, help="development prompts generated together")
    p.add_argument("--dev-items", type=int, help="score only the first N development items (quick runs)")
    p.add_argument("--dev-max-new-tokens", type=int, help="generation cap on the development split")
    p.add_argument("--threads", type=int, default=0)
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

    t0 = time.monotonic()
    model, tok = trainer.load_base(args.base_gguf, cfg.threads)
    load_s = time.monotonic() - t0
    base_linear = trainer.lora_state(model) if cfg.full else {}
    eot = trainer.end_of_turn(tok, "chat")
    curve: list[dict[str, Any]] = []
    states: dict[int, dict[str, Any]] = {}
    eval_s = [0.0]

    outputs: dict[str, list[dict[str, str]]] = {}

    def on_epoch(m: Any, state: dict[str, Any]) -> None:
        t = time.monotonic()
        ev = dev_eval.evaluate(m, tok, dev_items, eot, max_new_tokens=cfg.dev_max_new_tokens, batch=args.dev_batch)
        eval_s[0] += time.monotonic() - t
        n = int(state["epoch"])
        outputs[str(n)] = [{"ref": it["ref"], "output": o} for it, o in zip(dev_items, ev["outputs"], strict=True)]
        (args.out / DEV_OUTPUTS).write_text(json.dumps(outputs), encoding="utf-8")
        curve.append(
            {"epoch": n, "step": state["step"], "train_loss": state["epoch_losses"][-1],
             "elapsed_s": round(state["seconds"] + time.monotonic() - t, 1),
             "dev_seconds": round(time.monotonic() - t, 1), "scored": ev["scored"], "dev": ev["scores"]}
        )
        (args.out / "curve.json").write_text(json.dumps(curve, indent=2), encoding="utf-8")
        if _choose(curve) == len(curve) - 1:  # the best so far: keep its weights (CPU, float16)
            states.clear()
            states[n] = {k: v.half() for k, v in trainer.lora_state(m).items()}
        print(f"epoch {n}: loss {curve[-1]['train_loss']} dev {json.dumps(ev['scores'])[:400]}", flush=True)

    def progress(step: int, total: int, loss: float) -> None:
        if step == 1 or step % 50 == 0 or step == total:
            print(f"step {step}/{total} loss {loss:.4f} ({time.monotonic() - t_job:.0f} s)", flush=True)

    model, result = trainer.train_encoded(
        model, encoded, pad_id, cfg, args.out / "work", progress=progress, show_bar=False, on_epoch=on_epoch
    )
    chosen = curve[_choose(curve)]["epoch"] if curve else None
    record: dict[str, Any] = {"name": name, "config": asdict(cfg), "examples": len(encoded), "dev_items": len(dev_items)}
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


if __name__ == "__main__":
    sys.exit(main())
