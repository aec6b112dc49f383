"""Train a prepared run on another machine: ``python -m noteward.training.job WORKDIR --base-gguf PATH``.

``noteward finetune ... --prepare-only`` builds the training set on the workstation (the
data never needs the network), tokenizes it and writes ``encoded.pt`` and ``config.json``
into the run's work folder. Copy that folder and the base GGUF to a machine with a GPU
(an on-premise training server; the data is the de-identified training set, not the
vault) and run this module there: it needs only torch, transformers, peft and gguf, not
the rest of Noteward's dependencies. It writes ``checkpoint.pt``, ``state.json`` and
``job.json`` into the folder. Copy the folder back and run the same ``noteward finetune``
command with ``--resume``: it finds the finished checkpoint, exports the GGUF adapter,
writes the model card (which records the GPU) and registers the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from noteward.training import trainer

ENCODED_FILE = "encoded.pt"
COMPACT_FILE = "encoded.npz"


def save_encoded(
    workdir: Path, encoded: list[tuple[list[int], list[int]]], pad_id: int, cfg: trainer.TrainConfig
) -> Path:
    """Write the tokenized training set and its config (what the job needs) into ``workdir``."""
    import torch

    path = workdir / ENCODED_FILE
    tmp = path.with_suffix(".tmp")
    torch.save({"encoded": encoded, "pad_id": pad_id, "config": asdict(cfg)}, tmp)
    tmp.replace(path)
    return path


def save_compact(
    workdir: Path, encoded: list[tuple[list[int], list[int]]], pad_id: int, cfg: trainer.TrainConfig
) -> Path:
    """The tokenized set as ``encoded.npz``: token ids (uint32), lengths, prompt lengths.

    About a fifth of ``encoded.pt``'s size, which matters when it must travel to a GPU
    machine in a call of 64 MiB beside the base model. Labels are rebuilt from the prompt
    length (the prompt is masked, the rest is the target: see ``trainer.encode``).
    """
    import numpy as np

    prompt_lens = []
    for ids, labels in encoded:
        n = next((i for i, x in enumerate(labels) if x != -100), len(labels))
        if labels[n:] != ids[n:]:
            raise ValueError("a label sequence is not 'prompt masked, then the ids'")
        prompt_lens.append(n)
    path = workdir / COMPACT_FILE
    with path.open("wb") as fh:
        np.savez_compressed(
            fh,
            ids=np.array([t for ids, _ in encoded for t in ids], dtype=np.uint32),
            lengths=np.array([len(ids) for ids, _ in encoded], dtype=np.int32),
            prompt_lengths=np.array(prompt_lens, dtype=np.int32),
            pad_id=np.array(pad_id),
            config=np.array(json.dumps(asdict(cfg))),
        )
    return path


def load_encoded(
    workdir: Path,
) -> tuple[list[tuple[list[int], list[int]]], int, trainer.TrainConfig]:
    """The prepared set of ``workdir`` (``encoded.npz`` if present, else ``encoded.pt``)."""
    compact = workdir / COMPACT_FILE
    if compact.exists():
        import numpy as np

        z = np.load(compact)
        flat, out, start = z["ids"].tolist(), [], 0
        for n, p in zip(z["lengths"].tolist(), z["prompt_lengths"].tolist(), strict=True):
            ids = flat[start : start + n]
            out.append((ids, [-100] * p + ids[p:]))
            start += n
        return out, int(z["pad_id"]), _config(json.loads(str(z["config"])))
    import torch

    path = workdir / ENCODED_FILE
    if not path.exists():
        raise SystemExit(f"{path} not found: run `noteward finetune ... --prepare-only` first.")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    return blob["encoded"], int(blob["pad_id"]), _config(blob["config"])


def _config(raw: dict[str, object]) -> trainer.TrainConfig:
    known = {f.name for f in fields(trainer.TrainConfig)}
    cfg_dict: dict[str, object] = {k: v for k, v in raw.items() if k in known}
    if "target_modules" in cfg_dict:
        cfg_dict["target_modules"] = tuple(cfg_dict["target_modules"])  # type: ignore[arg-type]
    return trainer.TrainConfig(**cfg_dict)  # type: ignore[arg-type]


def save_snapshot(workdir: Path, model: object, state: dict[str, object]) -> Path:
    """A weights-only checkpoint (LoRA tensors in float16): ``snapshot-<step>.pt``.

    Copy it over ``checkpoint.pt`` in the run folder and finish with ``noteward finetune ...
    --resume --max-steps <planned steps> --stop-after-step <step>`` to export that step's adapter.
    """
    import torch

    lora = trainer.lora_state(model) if model is not None else state["lora"]
    out = {k: v for k, v in state.items() if k not in ("lora", "optimizer")}
    out["lora"] = {k: v.to(torch.float16) for k, v in lora.items()}  # type: ignore[attr-defined]
    path = workdir / f"snapshot-{state['step']}.pt"
    torch.save(out, path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m noteward.training.job", description=__doc__.splitlines()[0]
    )
    p.add_argument("workdir", type=Path, help="the run's work folder (holds encoded.pt)")
    p.add_argument("--base-gguf", type=Path, required=True, help="the base model's GGUF file")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    p.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: keep the run's)"
    )
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    p.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds (checkpointed)")
    p.add_argument(
        "--snapshots",
        default="",
        help="also keep weights-only checkpoints (LoRA in float16, no optimizer; small enough to copy "
        "back) at these optimizer steps, comma-separated, and at the last step, as snapshot-<step>.pt",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    encoded, pad_id, cfg = load_encoded(args.workdir)
    cfg.device = args.device
    if args.threads:
        cfg.threads = args.threads
    if args.time_budget is not None:
        cfg.time_budget_s = args.time_budget
    t0 = time.monotonic()
    model, _tok = trainer.load_base(args.base_gguf, cfg.threads)
    load_s = time.monotonic() - t0

    def progress(step: int, total: int, loss: float) -> None:
        if step == 1 or step % 25 == 0 or step == total:
            print(
                f"step {step}/{total} loss {loss:.4f} ({time.monotonic() - t0:.0f} s)", flush=True
            )

    wanted = {int(x) for x in args.snapshots.split(",") if x.strip()}

    def on_step(m: object, state: dict[str, object]) -> None:
        if state["step"] in wanted:
            save_snapshot(args.workdir, m, state)

    _model, result = trainer.train_encoded(
        model,
        encoded,
        pad_id,
        cfg,
        args.workdir,
        resume=args.resume,
        progress=progress,
        show_bar=False,
        on_step=on_step if wanted else None,
    )
    if wanted:
        import torch

        last = torch.load(
            args.workdir / trainer.CHECKPOINT_FILE, map_location="cpu", weights_only=False
        )
        last.pop("optimizer", None)
        save_snapshot(args.workdir, None, last)
    record = {"load_s": round(load_s, 1), "examples": len(encoded), **asdict(result)}
    (args.workdir / "job.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(
        f"trained {result.steps}/{result.target_steps} steps in {result.seconds:.0f} s on {result.hardware}; "
        f"loss {result.first_loss} -> {result.last_loss} (stopped by {result.stopped_by})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
