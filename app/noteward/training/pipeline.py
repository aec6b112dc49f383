"""`noteward finetune` end to end: data -> LoRA training -> GGUF adapter -> card -> manifest.

The run lives in a work folder (``<user data dir>/training/<name>``) holding the
checkpoint, the balance report and the run record; ``--resume`` continues there. The
adapter, its model card and a manifest overlay entry go under
``<user data dir>/models`` (never into an installed copy of Noteward).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.errors import ModelError, UsageError
from noteward.llm.manifest import sha256_file
from noteward.settings import models_dir as shipped_models_dir
from noteward.settings import shared_data_dir, user_data_dir
from noteward.training import data as data_mod
from noteward.training import export, trainer

if TYPE_CHECKING:
    from noteward.store.vault import Vault

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


def work_dir(name: str) -> Path:
    """Checkpoints and run records of fine-tuning run ``name``."""
    return user_data_dir() / "training" / name


def models_dir() -> Path:
    """Where locally fine-tuned adapters, cards and the manifest overlay live."""
    return user_data_dir() / "models"


def check_name(name: str) -> str:
    """A model id usable as a file name and manifest id."""
    if not _NAME.match(name):
        raise UsageError(
            f"Model name {name!r} is not usable: use 2-63 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (for example smollm2-135m-clinical)."
        )
    return name


def resolve_base(model_id: str) -> tuple[Path, dict[str, Any]]:
    """GGUF path and manifest entry of a base model id (a .gguf path is accepted too)."""
    p = Path(model_id).expanduser()
    if p.suffix == ".gguf":
        if not p.exists():
            raise UsageError(f"Base model file {p} does not exist.")
        return p, {"id": p.stem, "prompt_style": "chat"}
    from noteward.llm.manifest import load_manifest

    entry = load_manifest().get(model_id)
    if entry.adapter_file() is not None:
        raise UsageError(f"{model_id!r} is itself a fine-tuned adapter; give its base model instead.")
    mf = entry.model_file()
    if not mf.path.exists():
        raise ModelError(f"Base model {model_id!r} is missing ({mf.path}); install {mf.package or 'it'} first.")
    return mf.path, {"id": entry.id, "sha256": mf.sha256, "prompt_style": entry.prompt_style, **entry.raw}


@dataclass
class FinetuneRun:
    """What `noteward finetune` produced (printed as JSON and kept in the work folder)."""

    name: str
    base: str
    sources: list[str]
    adapter: str
    adapter_sha256: str
    adapter_size: int
    card: str
    manifest: str
    balance: dict[str, Any]
    train: dict[str, Any]
    config: dict[str, Any]
    finished_at: str
    # the adapter folded into the base weights ({"type", "sha256", "size"}; see noteward.llm.merge)
    merge: dict[str, Any] = field(default_factory=dict)


def build_training_set(
    sources: list[str],
    seed: int,
    max_tokens: int,
    limit: int | None = None,
    vault: Vault | None = None,
    data_dir: Path | None = None,
    verify: bool = False,
    aci_window: int = 6,
    aci_visit_prompts: int = 0,
    recipe: str = "grounded-v1",
) -> list[Any]:
    """The balanced training set (optionally cut to ``limit`` examples for quick runs).

    ``recipe`` "reference-v2" builds ``reference_data`` examples (targets are the
    reference texts, the development split left out); "grounded-v1" the cited bullets.
    """
    limits = None
    if limit is not None:
        per = max(1, limit // max(1, len(sources)))
        limits = {s: per for s in sources}
    if recipe == "reference-v2":
        from noteward.training import reference_data

        exs: list[Any] = reference_data.build_examples(
            sources, data_dir or shared_data_dir(), seed=seed, max_tokens=max_tokens, limits=limits
        )
        if not exs:
            raise UsageError("The chosen sources gave no training examples; check the data folder and --data.")
        return exs[:limit] if limit is not None else exs
    exs = data_mod.build_examples(
        sources,
        data_dir or shared_data_dir(),
        seed=seed,
        max_tokens=max_tokens,
        limits=limits,
        vault=vault,
        verify=verify,
        aci_window=aci_window,
        aci_visit_prompts=aci_visit_prompts,
    )
    if not exs:
        raise UsageError("The chosen sources gave no training examples; check the data folder and --data.")
    return exs[:limit] if limit is not None else exs


def _prepare_run(
    base: str,
    sources: list[str],
    name: str,
    cfg: trainer.TrainConfig,
    resume: bool,
    limit: int | None,
    vault: Vault | None,
    data_dir: Path | None,
    dev_limit: int | None = None,
) -> tuple[str, Path, dict[str, Any], Path, list[Any], dict[str, Any]]:
    """Check the run, build its training set, write balance.json and config.json."""
    name = check_name(name)
    gguf_path, entry = resolve_base(base)
    cfg.prompt_style = str(entry.get("prompt_style") or "chat")
    wd = work_dir(name)
    wd.mkdir(parents=True, exist_ok=True)
    ckpt_cfg = wd / "config.json"
    if resume and ckpt_cfg.exists():
        saved = json.loads(ckpt_cfg.read_text(encoding="utf-8"))
        if saved.get("base") != entry["id"] or saved.get("sources") != sources:
            raise UsageError(
                "--resume must use the same --base and --data as the run it continues "
                f"(it used {saved.get('base')} on {','.join(saved.get('sources', []))})."
            )
    examples = build_training_set(
        sources,
        cfg.seed,
        cfg.max_seq_len - 40,
        limit,
        vault,
        data_dir,
        verify=cfg.verified_targets,
        aci_window=cfg.aci_window,
        aci_visit_prompts=cfg.aci_visit_prompts,
        recipe=cfg.recipe,
    )
    if cfg.recipe == "reference-v2":
        cfg.prompt_style = "chat"  # the recipe always uses the tokenizer's chat template
        write_dev_set(wd, sources, cfg, data_dir, dev_limit)
    balance = data_mod.balance_report(examples)
    (wd / "balance.json").write_text(json.dumps(balance, indent=2), encoding="utf-8")
    ckpt_cfg.write_text(
        json.dumps({"base": entry["id"], "sources": sources, "config": asdict(cfg), "limit": limit}, indent=2),
        encoding="utf-8",
    )
    log.info("training set: %d examples", len(examples))
    return name, gguf_path, entry, wd, examples, balance


def write_dev_set(
    wd: Path, sources: list[str], cfg: trainer.TrainConfig, data_dir: Path | None, dev_limit: int | None
) -> list[dict[str, Any]]:
    """The development split (reference-v2) as ``dev.json`` in the work folder.

    ``dev_limit`` keeps the first N MTS-Dialog items and the divisions of the first N
    ACI-Bench visits (quick runs); None keeps all 100 and 10.
    """
    from noteward.training import dev_eval, reference_data

    # never cut by the sequence length: the split must be the same whatever a run trains on
    dev = reference_data.build_examples(sources, data_dir or shared_data_dir(), seed=cfg.seed, max_tokens=10**7, split="dev")
    if dev_limit is not None:
        keep_mts = {e.ref for e in dev if e.source == "mts-dialog"}
        keep_mts = set(sorted(keep_mts)[:dev_limit])
        visits = sorted({e.meta.get("visit", "") for e in dev if e.source == "aci-bench"})[:dev_limit]
        dev = [e for e in dev if e.ref in keep_mts or e.meta.get("visit") in visits]
    items = [{**e.to_json(), "meta": e.meta} for e in dev]
    dev_eval.save_dev(wd, items)
    return items


def prepare(
    base: str,
    sources: list[str],
    name: str,
    cfg: trainer.TrainConfig,
    *,
    limit: int | None = None,
    vault: Vault | None = None,
    data_dir: Path | None = None,
    dev_limit: int | None = None,
) -> dict[str, Any]:
    """Build and tokenize the training set for training elsewhere (``noteward.training.job``)."""
    from noteward.training import job

    name, gguf_path, _entry, wd, examples, balance = _prepare_run(
        base, sources, name, cfg, False, limit, vault, data_dir, dev_limit
    )
    tok = trainer.load_tokenizer(gguf_path)
    encoded = trainer.encode_all(examples, tok, cfg)
    if not encoded:
        raise UsageError("No training example fits the sequence length; raise --max-seq-len or add data.")
    if cfg.recipe == "reference-v2":
        path = job.save_compact(wd, encoded, tok.pad_token_id, cfg)  # small enough to carry to a GPU
    else:
        path = job.save_encoded(wd, encoded, tok.pad_token_id, cfg)
    return {
        "name": name,
        "workdir": str(wd),
        "encoded": str(path),
        "examples": len(encoded),
        "skipped": len(examples) - len(encoded),
        "base_gguf": str(gguf_path),
        "balance": balance,
    }


def finetune(
    base: str,
    sources: list[str],
    name: str,
    cfg: trainer.TrainConfig,
    *,
    resume: bool = False,
    limit: int | None = None,
    vault: Vault | None = None,
    data_dir: Path | None = None,
    show_bar: bool = True,
    progress: Callable[[int, int, float], None] | None = None,
    merge: str | None = None,
    dev_limit: int | None = None,
) -> FinetuneRun:
    """Run the whole pipeline and register the adapter in the user manifest overlay.

    With the reference-v2 recipe the development split is scored after every epoch
    (``dev_eval``) and the curve (per-epoch training loss and development ROUGE) is written
    to ``curve.json`` in the work folder and into the run record.
    """
    name, gguf_path, entry, wd, examples, balance = _prepare_run(
        base, sources, name, cfg, resume, limit, vault, data_dir, dev_limit
    )
    model, tok = trainer.load_base(gguf_path, cfg.threads)
    base_linear = trainer.lora_state(model) if cfg.full else {}
    curve: list[dict[str, Any]] = []
    on_epoch = None
    if cfg.recipe == "reference-v2":
        from noteward.training import dev_eval

        dev_items = dev_eval.load_dev(wd)
        eot = trainer.end_of_turn(tok, "chat")

        def on_epoch(m: Any, state: dict[str, Any]) -> None:
            ev = dev_eval.evaluate(m, tok, dev_items, eot, max_new_tokens=cfg.dev_max_new_tokens) if dev_items else {}
            curve.append(
                {"epoch": state["epoch"], "step": state["step"], "train_loss": state["epoch_losses"][-1],
                 "seconds": round(state["seconds"], 1), "dev": ev.get("scores", {})}
            )
            (wd / "curve.json").write_text(json.dumps(curve, indent=2), encoding="utf-8")

    model, result = trainer.train(
        model, tok, examples, cfg, wd, resume=resume, progress=progress, show_bar=show_bar, on_epoch=on_epoch
    )
    out_dir = models_dir()
    alpha: float = cfg.alpha
    if cfg.full:
        tuned = trainer.lora_state(model)
        lora = export.lora_from_delta(base_linear, tuned, cfg.rank)
        log.info("low-rank extraction keeps %.3f of the update", export.delta_kept(base_linear, tuned, lora))
        alpha = float(cfg.rank)
    else:
        lora = export.peft_state_for_export(model)
    adapter = export.export_lora_gguf(lora, model.config, alpha, out_dir / f"{name}-lora.gguf", name=name)
    train_info = {k: v for k, v in asdict(result).items() if k != "losses"}
    return _record_run(
        wd, entry, gguf_path, adapter, name, sources, merge,
        balance=balance, train=train_info, config=asdict(cfg), losses=result.losses, curve=curve,
    )


def _record_run(
    wd: Path, entry: dict[str, Any], gguf_path: Path, adapter: Path, name: str, sources: list[str],
    merge: str | None, *, balance: dict[str, Any], train: dict[str, Any], config: dict[str, Any],
    losses: list[Any], curve: list[Any],
) -> FinetuneRun:
    """What every finished run does with its adapter, trained here or on a GPU job: hash it,
    merge it if asked, write run.json and the model card, register it in the manifest."""
    from noteward.training import card as card_mod

    out_dir = models_dir()
    sha = sha256_file(adapter)
    run = FinetuneRun(
        name=name,
        base=entry["id"],
        sources=sources,
        adapter=str(adapter),
        adapter_sha256=sha,
        adapter_size=adapter.stat().st_size,
        card=str(out_dir / "cards" / f"{name}.md"),
        manifest=str(out_dir / "manifest.json"),
        balance=balance,
        train=train,
        config=config,
        finished_at=_dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        merge=merge_adapter(gguf_path, adapter, name, sha, merge) if merge else {},
    )
    (wd / "run.json").write_text(
        json.dumps({**asdict(run), "losses": losses, "curve": curve}, indent=2), encoding="utf-8"
    )
    card_mod.write_card(run, Path(run.card), base_entry=entry, evaluation=None, curve=curve)
    register(run, Path(run.manifest), adapter_path=adapter.name)
    return run


def adopt_job(
    job_dir: Path, base: str, sources: list[str], name: str, merge: str | None = None
) -> FinetuneRun:
    """Register the adapter a GPU job (``noteward.training.gpu_job``) wrote into ``job_dir``.

    The run must have been prepared here under the same ``name`` (its work folder holds
    ``dev.json``). Epochs the job could not score (no rouge-score on the GPU machine) are
    scored here from their saved outputs. Then as ``finetune``: adapter, merge, card, manifest.
    """
    from noteward.training import dev_eval, gpu_job

    name = check_name(name)
    try:
        record = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{job_dir} holds no readable job.json from noteward.training.gpu_job.") from None
    if record.get("name") and record["name"] != name:
        raise UsageError(
            f"The job in {job_dir} chose {record['name']!r} (base {record.get('base') or '?'}); "
            f"run with --name {record['name']}" + (f" --base {record['base']}." if record.get("base") else ".")
        )
    info = record.get("adapter") or {}
    if not info.get("parts"):
        raise UsageError(f"{job_dir} holds no adapter (the job finished no epoch).")
    gguf_path, entry = resolve_base(base)
    wd = work_dir(name)
    dev_items = dev_eval.load_dev(wd)
    curve = list(record.get("curve", []))
    saved = job_dir / gpu_job.DEV_OUTPUTS
    all_outputs = json.loads(saved.read_text(encoding="utf-8")) if saved.exists() else {}
    for row in curve:
        # the float weights' outputs, then (full fine-tunes) the shipped extraction's
        for key, flag, saved_as in (("dev", "scored", str(row["epoch"])),
                                    ("dev_extracted", "scored_extracted", f"{row['epoch']}-extracted")):
            outs = all_outputs.get(saved_as)
            if (key == "dev" or flag in row) and not row.get(flag) and dev_items and outs:
                by_ref = {o["ref"]: o["output"] for o in outs}
                items = [it for it in dev_items if it["ref"] in by_ref]
                row[key] = dev_eval.score_outputs(items, [by_ref[it["ref"]] for it in items])
                row[flag] = True
    out_dir = models_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter = out_dir / f"{name}-lora.gguf"
    try:
        gpu_job.join_parts(job_dir, list(info["parts"]), adapter, str(info["sha256"]))
    except (OSError, ValueError) as exc:
        raise UsageError(f"The adapter in {job_dir} is incomplete or damaged ({exc}); fetch the job's files again.") from None
    train = dict(record.get("train", {}))
    train["hardware"] = f"{record.get('device', '?')} (noteward.training.gpu_job)"
    train["gpu_job_seconds"] = record.get("timing", {}).get("job_s")
    train["chosen_epoch"] = record.get("chosen_epoch")
    if record.get("candidates"):  # the bases the job trained (or skipped) and their development scores
        train["bases_tried"] = [
            {k: c.get(k) for k in ("name", "base", "skipped", "chosen_epoch", "dev_score")} for c in record["candidates"]
        ]
    wd.mkdir(parents=True, exist_ok=True)
    balance_file = wd / "balance.json"
    run = _record_run(
        wd, entry, gguf_path, adapter, name, sources, merge,
        balance=json.loads(balance_file.read_text(encoding="utf-8")) if balance_file.exists() else {},
        train=train, config=dict(record.get("config", {})), losses=record.get("losses", []), curve=curve,
    )
    (wd / "curve.json").write_text(json.dumps(curve, indent=2), encoding="utf-8")
    return run


def merge_adapter(
    base_gguf: Path, adapter: Path, name: str, adapter_sha256: str, qtype: str = "Q8_0"
) -> dict[str, Any]:
    """Fold the adapter into the base weights in the model cache; its manifest "merge" entry.

    The app then runs the merged file near the base model's speed (llama.cpp applying an
    r=16 all-linear adapter at load time halves it); see noteward.llm.merge. The merged
    weights do not compute exactly what base + adapter computes, so the entry that
    `eval finetune` judges (and ships) is the merged one.
    """
    from noteward.llm.manifest import merged_cache_path
    from noteward.llm.merge import merge_lora

    out = merge_lora(base_gguf, adapter, merged_cache_path(name, adapter_sha256, qtype), qtype)
    return {"type": qtype, "sha256": sha256_file(out), "size": out.stat().st_size}


def register(run: FinetuneRun, manifest: Path, adapter_path: str, default: bool = False) -> None:
    """Add (or replace) the adapter's entry in a manifest file (created if absent)."""
    data: dict[str, Any] = {"schema_version": 1, "models": []}
    if manifest.exists():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            raise UsageError(f"{manifest} is not valid JSON; fix or remove it and run again.") from None
    entry = manifest_entry(run, adapter_path)
    data["models"] = [m for m in data.get("models", []) if m.get("id") != run.name] + [entry]
    if default:
        data["default"] = run.name
    manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest)


def base_context_length(base: str) -> int:
    """The base model's context length from the manifest (4096 when it does not say)."""
    try:
        from noteward.llm.manifest import load_manifest

        return int(load_manifest().get(base).raw.get("context_length") or 4096)
    except (ModelError, ValueError, TypeError):
        return 4096


_INTENDED_USE = {
    "grounded-v1": "Grounded patient summaries (grounded-v1 prompt); every sentence is checked against the notes.",
    "reference-v2": "Note text in its own words from the {recipe} prompts (a note section, an ACI-Bench division, "
    "a synopsis, problem or medication list), without citations; every sentence is checked against the notes "
    "after generation.",
}


def manifest_entry(run: FinetuneRun, adapter_path: str) -> dict[str, Any]:
    """The manifest entry of a fine-tuned adapter (format of noteward.llm.manifest); its
    ``intended_use`` names the recipe the run was trained on."""
    recipe = str(run.config.get("recipe", "grounded-v1"))
    return {
        "id": run.name,
        "name": f"{run.name} (LoRA on {run.base})",
        "base": run.base,
        "adapter": {"path": adapter_path, "sha256": run.adapter_sha256, "size": run.adapter_size},
        # the fields every manifest entry carries; for an adapter they describe the adapter file
        "source": {"kind": "lora-adapter", "path": adapter_path, "base": run.base},
        "sha256": run.adapter_sha256,
        "size": run.adapter_size,
        "quantization": "F16 LoRA adapter (r={rank}) applied to the base model's weights".format(rank=run.config.get("rank")),
        "context_length": int(base_context_length(run.base)),
        "chat_template": "the base model's (from its GGUF tokenizer.chat_template)",
        "prompt_style": run.config.get("prompt_style", "chat"),
        "licence": "Adapter trained on CC BY 4.0 (MTS-Dialog, ACI-Bench, MeQSum) and CC0 (Synthea) data; base model licence applies",
        "intended_use": _INTENDED_USE.get(recipe, _INTENDED_USE["grounded-v1"]).format(recipe=recipe),
        "card": f"cards/{run.name}.md",
        "recipe": recipe,
        "training": {"steps": run.train["steps"], "seconds": run.train["seconds"], "sources": run.sources},
        **({"merge": dict(run.merge)} if run.merge else {}),
    }


def load_run(name: str) -> FinetuneRun:
    """The record of a finished `noteward finetune` run."""
    path = work_dir(name) / "run.json"
    if not path.exists():
        raise UsageError(f"No finished fine-tuning run named {name!r} under {work_dir(name).parent}.")
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.pop("losses", None)
    raw.pop("curve", None)
    return FinetuneRun(**raw)


def update_card_and_ship(
    name: str, results: dict[str, Any], verdict: dict[str, Any], ship: bool, notes: str = ""
) -> dict[str, Any] | None:
    """Write the eval table into the local card; with ``ship`` copy adapter + card into models/.

    The shipped entry becomes the manifest default only when ``verdict['passes']``.
    """
    import shutil

    from noteward.training import card as card_mod
    from noteward.training import evaluate

    run = load_run(name)
    _, base_entry = resolve_base(run.base)
    ev = evaluate.table(results)
    limit = results.get("limit")
    ev["description"] = (
        "`noteward eval summarize` (noteward.llm.evaluation) on MTS-Dialog validation"
        + (f" and ACI-Bench validation (first {limit} items each)" if limit else " and ACI-Bench validation")
        + " and the three held-out Synthea patients (63ee2253, 3af3708d, 79a66c97; key facts = their "
        "active conditions and medications in the FHIR resources). `noteward+<model>` is the product's "
        "summary (extractive skeleton plus the model's checked bullets); `<model> (model bullets only)` "
        "is the model's own output; lead-3, TextRank and noteward-extractive are the baselines."
    )
    checks = "\n".join(f"- {'PASS' if c['ok'] else 'FAIL'}: {c['check']}" for c in verdict["checks"])
    ev["verdict"] = (
        f"Bar for the default model (beat both base models and the extractive baselines on ROUGE-L and "
        f"key-fact recall, >= 0.90 supported, no hallucinated numbers): "
        f"{'met' if verdict['passes'] else 'NOT met'}.\n\n{checks}"
    )
    card_mod.write_card(run, Path(run.card), base_entry=base_entry, evaluation=ev, notes=notes)
    if not ship:
        return None
    dest = shipped_models_dir()
    adapter = dest / f"{name}-lora.gguf"
    shutil.copyfile(run.adapter, adapter)
    if sha256_file(adapter) != run.adapter_sha256:
        raise ModelError(f"The copied adapter {adapter} does not match its recorded sha256.")
    card_path = dest / "cards" / f"{name}.md"
    card_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.card, card_path)
    register(run, dest / "manifest.json", adapter_path=f"models/{adapter.name}", default=bool(verdict["passes"]))
    return {"adapter": str(adapter), "card": str(card_path), "default": bool(verdict["passes"])}
