"""`noteward finetune`: build a training set, LoRA-train a base model, export and register it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from typing import Any

from noteward.core.errors import UsageError
from noteward.store.unlock import open_vault

log = logging.getLogger(__name__)

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def register(sub: Any, groups: dict[str, Any]) -> None:
    p = sub.add_parser(
        "finetune",
        help="LoRA fine-tune a base model into a grounded summarizer (CPU or GPU)",
        description=(
            "Build a grounded-v1 training set from the shared corpora (train splits only) or a "
            "vault's approved summaries (de-identified), LoRA-train the base model on the CPU with "
            "checkpoints (or on a CUDA GPU), export a GGUF adapter, write its model card and register it in the user "
            "manifest overlay."
        ),
    )
    p.add_argument("--base", required=True, help="base model id from the manifest (or a .gguf path)")
    p.add_argument(
        "--data", required=True, help="sources, comma-separated: mts-dialog, aci-bench, meqsum, synthea, vault"
    )
    p.add_argument("--name", required=True, help="id of the new model (file and manifest name)")
    p.add_argument("--max-steps", type=int, default=0, help="optimizer steps (default: one pass over the data)")
    p.add_argument("--time-budget", type=float, default=0.0, help="stop after this many seconds (checkpointed)")
    p.add_argument(
        "--stop-after-step",
        type=int,
        default=0,
        help="stop at this optimizer step while the learning-rate schedule is planned for --max-steps",
    )
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--limit", type=int, default=None, help="use at most this many examples (quick runs)")
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument(
        "--modules", default="q_proj,v_proj", help="LoRA target modules, comma-separated, or 'all-linear'"
    )
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    p.add_argument("--batch", type=int, default=2, help="micro-batch size")
    p.add_argument("--grad-accum", type=int, default=4, help="micro-batches per optimizer step")
    p.add_argument("--max-seq-len", type=int, default=768, help="longest example in tokens")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: the settings' threads)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--data-dir", help="shared data folder (default NOTEWARD_SHARED_DATA or ../shared/data)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="train on the CPU or a CUDA GPU (auto: GPU when torch sees one)"
    )
    p.add_argument(
        "--verified-targets",
        action="store_true",
        help="train only on reference sentences that Noteward's aligner finds supported by the source",
    )
    p.add_argument("--aci-window", type=int, default=6, help="ACI-Bench note sentences per training example")
    p.add_argument(
        "--merge",
        default="none",
        choices=("none", "Q8_0", "F16"),
        help="also fold the adapter into the base weights at this type; the app then runs that file "
        "(about twice as fast as applying the adapter at load) and `eval finetune` judges it",
    )
    p.add_argument(
        "--aci-visit-prompts",
        type=int,
        default=0,
        choices=range(0, 5),
        metavar="N",
        help="also train on whole ACI-Bench visits shown as the summary prompt shows them, at N prompt sizes (0-4)",
    )
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="build and tokenize the training set into the run folder and stop; train it elsewhere with "
        "`python -m noteward.training.job`, then finish here with --resume",
    )
    p.add_argument(
        "--recipe",
        default="grounded-v1",
        choices=("grounded-v1", "reference-v2"),
        help="grounded-v1: cited bullets (the current default model); reference-v2: the reference texts "
        "themselves (MTS-Dialog sections, ACI-Bench note divisions, MeQSum, Synthea synopsis/problems/"
        "medications), a development split held out and scored after every epoch",
    )
    p.add_argument("--epochs", type=int, default=0, help="passes over the data when --max-steps is 0 (default 1)")
    p.add_argument(
        "--full",
        action="store_true",
        help="fine-tune the linear layers' full weights instead of LoRA; shipped as a "
        "low-rank extraction (rank --rank) of the update",
    )
    p.add_argument(
        "--dev-limit", type=int, default=None,
        help="reference-v2: score only the first N development MTS-Dialog items and ACI-Bench visits",
    )
    p.add_argument(
        "--from-job",
        metavar="DIR",
        help="register the adapter that `python -m noteward.training.gpu_job` wrote into DIR (run prepared "
        "here with --prepare-only under the same --name); scores its epochs here if the GPU could not",
    )
    p.add_argument("--vault", help="vault for the 'vault' source")
    p.add_argument("--passphrase-file", help="passphrase file for --vault")
    p.set_defaults(handler=run_finetune)

    e = groups["eval"].add_parser(
        "finetune",
        help="before/after summary eval of a fine-tuned adapter; card table; ship it",
        description=(
            "Run `eval summarize` for the base models and the adapter, write the before/after "
            "table into the adapter's model card, and with --ship copy the adapter and card into "
            "models/ and add its entry to models/manifest.json (made the default only when it "
            "beats both base models and the extractive baselines)."
        ),
    )
    e.add_argument("--model", required=True, help="the fine-tuned model id (from `noteward finetune --name`)")
    e.add_argument("--limit", type=int, help="only the first N items of MTS-Dialog and ACI-Bench")
    e.add_argument("--bases", help="base model ids, comma-separated (default: every non-adapter model)")
    e.add_argument("--baseline", help="reuse base-model results from this JSON (same --limit)")
    e.add_argument("--out", help="save the merged results as JSON here")
    e.add_argument("--ship", action="store_true", help="copy adapter + card into models/ and register it")
    e.add_argument("--note", default="", help="free text for the card's Notes section (how the run went)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=run_eval_finetune)

    b = groups["bench"].add_parser(
        "decode",
        help="tokens/s of a fine-tuned model (adapter at load, merged) against its base, same run",
        description=(
            "Load the base model and the fine-tuned model (its pinned merged file, or the adapter at "
            "load and a merged file built for the bench), let them take turns on one prompt and print "
            "the fastest tokens/s of each with its ratio to the base (the bar: at least 0.9)."
        ),
    )
    b.add_argument("--model", required=True, help="the fine-tuned model id")
    b.add_argument("--repeat", type=int, default=3, help="rounds (fastest reported)")
    b.add_argument("--tokens", type=int, default=128, help="tokens to generate per round")
    b.add_argument("--merge", default="Q8_0", choices=("Q8_0", "F16"), help="type of a merge built for the bench")
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=run_bench_decode)


def run_bench_decode(args: argparse.Namespace) -> int:
    from noteward.training.speed import decode_speed

    res = decode_speed(args.model, threads=args.threads, repeat=args.repeat, max_tokens=args.tokens, merge=args.merge)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{res['model']} on {res['base']}, {res['threads']} threads, fastest of {res['repeat']}:")
    for label, row in res["rows"].items():
        print(f"  {label:<36} {row['tokens_per_s']:7.2f} tokens/s  x{row['ratio_to_base']}  ({row['generated_tokens']} tokens, {row['file']})")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from noteward.settings import load_settings
    from noteward.training import data as data_mod
    from noteward.training import pipeline, trainer

    sources = data_mod.parse_sources(args.data)
    for flag, value in (
        ("--max-steps", args.max_steps),
        ("--time-budget", args.time_budget),
        ("--stop-after-step", args.stop_after_step),
    ):
        if value < 0:
            raise UsageError(f"{flag} must be zero or positive.")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1.")
    modules = ALL_LINEAR if args.modules == "all-linear" else tuple(m.strip() for m in args.modules.split(",") if m.strip())
    bad = [m for m in modules if m not in ALL_LINEAR]
    if bad or not modules:
        raise UsageError(f"Unknown LoRA module(s) {', '.join(bad) or '(none)'}; choose from {', '.join(ALL_LINEAR)}.")
    if args.recipe == "reference-v2":
        if args.verified_targets or args.aci_visit_prompts or args.aci_window != 6:
            raise UsageError(
                "--verified-targets, --aci-window and --aci-visit-prompts belong to the grounded-v1 recipe; "
                "reference-v2 trains on the whole reference texts."
            )
        if "vault" in sources:
            raise UsageError("The reference-v2 recipe trains on the shared corpora only; drop 'vault' from --data.")
    for flag, value in (("--epochs", args.epochs), ("--dev-limit", args.dev_limit or 0)):
        if value < 0:
            raise UsageError(f"{flag} must be zero or positive.")
    threads = args.threads or load_settings().resolved_threads()
    cfg = trainer.TrainConfig(
        rank=args.rank,
        alpha=2 * args.rank,
        target_modules=modules,
        learning_rate=args.lr,
        micro_batch=args.batch,
        grad_accum=args.grad_accum,
        max_seq_len=args.max_seq_len,
        max_steps=args.max_steps,
        time_budget_s=args.time_budget,
        seed=args.seed,
        threads=threads,
        device=args.device,
        verified_targets=args.verified_targets,
        stop_after=args.stop_after_step,
        aci_window=args.aci_window,
        aci_visit_prompts=args.aci_visit_prompts,
        recipe=args.recipe,
        epochs=args.epochs,
        full=args.full,
    )
    vault = None
    if "vault" in sources:
        if not args.vault:
            raise UsageError("The 'vault' source needs --vault (and --passphrase-file or NOTEWARD_PASSPHRASE).")
        vault = open_vault(args)
    data = {
        "limit": args.limit,
        "vault": vault,
        "data_dir": Path(args.data_dir) if args.data_dir else None,
        "dev_limit": args.dev_limit,
    }
    if args.from_job:
        run = pipeline.adopt_job(
            Path(args.from_job), args.base, sources, args.name, None if args.merge == "none" else args.merge
        )
        print(f"{run.name}: adapter {run.adapter} ({run.adapter_size} bytes, sha256 {run.adapter_sha256})")
        print(f"model card {run.card}; registered in {run.manifest}")
        return 0
    if args.prepare_only:
        try:
            info = pipeline.prepare(args.base, sources, args.name, cfg, **data)
        finally:
            if vault is not None:
                vault.close()
        if args.json:
            json.dump(info, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(f"{info['examples']} tokenized examples ({info['skipped']} too long, skipped) in {info['encoded']}")
            print(
                f"train them with: python -m noteward.training.job {info['workdir']} --base-gguf {info['base_gguf']}; "
                "then run this command again with --resume (without --prepare-only)"
            )
        return 0
    try:
        run = pipeline.finetune(
            args.base,
            sources,
            args.name,
            cfg,
            resume=args.resume,
            merge=None if args.merge == "none" else args.merge,
            **data,
            show_bar=not args.no_progress and sys.stderr.isatty(),
            progress=None if sys.stderr.isatty() else _log_progress,
        )
    finally:
        if vault is not None:
            vault.close()
    record = asdict(run)
    if args.json:
        json.dump(record, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        t = run.train
        print(
            f"{run.name}: {t['steps']} steps in {t['seconds']:.0f} s (stopped by {t['stopped_by']}), "
            f"loss {t['first_loss']} -> {t['last_loss']}, {run.balance['examples']} examples"
        )
        print(f"adapter {run.adapter} ({run.adapter_size} bytes, sha256 {run.adapter_sha256})")
        print(f"model card {run.card}; registered in {run.manifest}")
    return 0


def _log_progress(step: int, total: int, loss: float) -> None:
    if step == 1 or step % 10 == 0 or step == total:
        log.info("fine-tuning step %d/%d loss %.3f", step, total, loss)


def run_eval_finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from noteward.llm.manifest import load_manifest
    from noteward.training import evaluate, pipeline

    manifest = load_manifest()
    entry = manifest.get(args.model)
    if entry.adapter_file() is None:
        raise UsageError(f"{args.model!r} is not a fine-tuned adapter; give the --name of a `noteward finetune` run.")
    if args.bases:
        bases = [b.strip() for b in args.bases.split(",") if b.strip()]
    else:
        bases = [mid for mid, e in manifest.entries.items() if e.adapter_file() is None]

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.baseline:
        base_res = evaluate.load(Path(args.baseline))
        missing = [b for b in bases if b not in base_res.get("models", {})]
        if missing:
            raise UsageError(f"{args.baseline} lacks results for {', '.join(missing)}; run without --baseline.")
        if base_res.get("limit") != args.limit:
            raise UsageError(f"{args.baseline} was made with --limit {base_res.get('limit')}; use the same --limit.")
        res = evaluate.merge(base_res, evaluate.run([args.model], args.limit, say))
    else:
        res = evaluate.run([*bases, args.model], args.limit, say)
    verdict = evaluate.verdict(res, args.model, bases)
    res["verdict"] = verdict
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2), encoding="utf-8")
    shipped = pipeline.update_card_and_ship(args.model, res, verdict, ship=args.ship, notes=args.note)
    if args.json:
        json.dump({**res, "shipped": shipped}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for row in evaluate.table(res)["rows"]:
            print(
                f"{row['dataset']:12} {row['system']:48} ROUGE-L {_f(row['ROUGE-L'])} "
                f"supported {_f(row['supported'])} bad-num {_f(row['hallucinated numbers'])} "
                f"key-facts {_f(row['key-fact recall'])}"
            )
        for c in verdict["checks"]:
            print(("PASS " if c["ok"] else "FAIL ") + c["check"])
        print(f"{args.model}: {'meets' if verdict['passes'] else 'does not meet'} the bar for the default model")
        if shipped:
            print(f"shipped: {shipped}")
    return 0


def _f(x: Any) -> str:
    return "   -  " if x is None else f"{x:.3f}"
