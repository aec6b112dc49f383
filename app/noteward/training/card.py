"""Model cards for fine-tuned adapters: base, data and licences, run, evaluation, hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LICENCES = {
    "mts-dialog": (
        "MTS-Dialog (training set)",
        "CC BY 4.0",
        "Asma Ben Abacha, Wen-wai Yim, Yadan Fan, Thomas Lin. An Empirical Study of Clinical Note "
        "Generation from Doctor-Patient Encounters. EACL 2023. https://github.com/abachaa/MTS-Dialog",
    ),
    "aci-bench": (
        "ACI-Bench (train split)",
        "CC BY 4.0",
        "Wen-wai Yim, Yujuan Fu, Asma Ben Abacha, Neal Snider, Thomas Lin, Meliha Yetisgen. ACI-BENCH: a "
        "Novel Ambient Clinical Intelligence Dataset for Benchmarking Automatic Visit Note Generation. "
        "Nature Scientific Data, 2023. https://github.com/wyim/aci-bench",
    ),
    "meqsum": (
        "MeQSum",
        "CC BY 4.0",
        "Asma Ben Abacha, Dina Demner-Fushman. On the Summarization of Consumer Health Questions. "
        "ACL 2019. https://github.com/abachaa/MeQSum",
    ),
    "synthea": (
        "Synthea synthetic FHIR patients (sample-bulk-fhir-datasets, 10-patients), eval patients excluded",
        "CC0 (data); generator Apache-2.0",
        "Synthea, The MITRE Corporation; smart-on-fhir/sample-bulk-fhir-datasets",
    ),
    "vault": ("Clinician-approved summaries from the local vault, de-identified", "local data", "this site"),
}


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_card(
    run: Any,
    path: Path,
    *,
    base_entry: dict[str, Any],
    evaluation: dict[str, Any] | None,
    notes: str = "",
    curve: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the markdown model card for ``run`` (a FinetuneRun) at ``path``.

    ``curve``: the per-epoch training loss and development scores (reference-v2 runs).
    """
    cfg = run.config
    tr = run.train
    hardware = tr.get("hardware") or f"CPU ({cfg['threads']} threads); no GPU"
    reference_v2 = cfg.get("recipe") == "reference-v2"
    intro = (
        "A LoRA adapter (GGUF) on the packaged base model, trained by `noteward finetune --recipe "
        "reference-v2` to write the note text itself: an MTS-Dialog section named in the prompt, an "
        "ACI-Bench note division, a one-question summary, a Synthea synopsis, problem list or medication "
        "list. Targets are the reference texts, without citations; Noteward's aligner checks the output "
        "afterwards. The output is machine-generated and must be checked against its sources."
        + (
            f" A full fine-tune of the linear layers, shipped as a rank-{cfg['rank']} extraction of its update."
            if cfg.get("full")
            else ""
        )
    )
    lines = [
        f"# {run.name}",
        "",
        intro if reference_v2 else "A LoRA adapter (GGUF) that llama.cpp applies to the packaged base model at load time, "
        "trained by `noteward finetune` to write grounded-v1 summaries: bullets under Problems, "
        "Medications, Allergies, Recent findings, Plan, Other, each citing the numbered source "
        "sentences it rests on. Noteward's aligner checks every bullet against the notes; the "
        "output is machine-generated and must be checked against its sources.",
        "",
        "## Model",
        "",
        f"- Base: `{run.base}` ({base_entry.get('upstream', base_entry.get('name', ''))}; licence "
        f"{base_entry.get('licence', 'see the base model')})",
        f"- Base sha256: `{base_entry.get('sha256', 'n/a')}`",
        f"- Adapter: `{Path(run.adapter).name}`, {run.adapter_size} bytes, sha256 `{run.adapter_sha256}`",
        f"- LoRA: r={cfg['rank']}, alpha={cfg['alpha']}, dropout={cfg['dropout']}, modules "
        f"{', '.join(cfg['target_modules'])}; prompt style {cfg['prompt_style']}",
        f"- Date: {run.finished_at}",
        "",
        "## Training run",
        "",
        f"- Hardware: {hardware}",
        f"- Optimizer steps: {tr['steps']} of {tr['target_steps']} planned "
        f"(stopped by {tr['stopped_by']}); micro-batch {cfg['micro_batch']} x accumulation "
        f"{cfg['grad_accum']}; {tr['examples_seen']} examples seen",
        f"- Wall time: {tr['seconds']:.0f} s; learning rate {cfg['learning_rate']} (cosine, "
        f"warm-up {cfg['warmup_steps']}); max sequence {cfg['max_seq_len']} tokens; seed {cfg['seed']}",
        f"- Loss: first step {_fmt(tr['first_loss'])}, last step {_fmt(tr['last_loss'])}",
        "",
        "## Training data",
        "",
        "Train splits only; no test split was read. The Synthea patients 63ee2253, 3af3708d and "
        "79a66c97 are kept out (the summary evaluation uses them).",
        "",
        "Targets: the reference texts themselves (MTS-Dialog section text, ACI-Bench note divisions, "
        "MeQSum summaries, Synthea synopsis / active problems / current medications with start dates), "
        "each turn ending with the chat template's end-of-turn token; a development split (100 MTS-Dialog "
        "pairs, 10 ACI-Bench visits, chosen by id hash) is held out of training."
        if reference_v2
        else "Targets: "
        + (
            "only reference sentences Noteward's aligner finds supported by the source "
            "(`--verified-targets`)"
            if cfg.get("verified_targets")
            else "every reference sentence with a cited source and no number missing from it"
        )
        + f"; ACI-Bench examples hold {cfg.get('aci_window', 6)} note sentences each"
        + (
            f", and each visit is also shown whole, as the summary prompt shows it, at "
            f"{cfg['aci_visit_prompts']} prompt size(s) (`--aci-visit-prompts`)."
            if cfg.get("aci_visit_prompts")
            else "."
        ),
        "",
        "| source | licence | attribution |",
        "|---|---|---|",
    ]
    for s in run.sources:
        title, lic, attr = LICENCES[s]
        lines.append(f"| {title} | {lic} | {attr} |")
    bal = run.balance
    lines += ["", f"Balance ({bal.get('examples', 'n/a')} examples):", ""]
    for key in ("source", "kind", "sex", "age_band", "section"):
        items = ", ".join(f"{k} {v}" for k, v in bal.get(key, {}).items())
        lines.append(f"- by {key.replace('_', ' ')}: {items}")
    if curve:
        # a full fine-tune ships a rank-r extraction: its own development scores come beside
        extracted = any(row.get("dev_extracted") for row in curve)
        head = "| epoch | step | train loss | MTS ROUGE-L | ACI whole-note ROUGE-Lsum | MTS copied 4-grams |"
        if extracted:
            head += " extracted (ships): MTS ROUGE-L | ACI whole-note ROUGE-Lsum | share of update kept |"
        lines += ["", "## Loss and development curve", "", head, "|" + "---|" * (head.count("|") - 1)]
        for row in curve:
            dev = row.get("dev") or {}
            mts, aci = dev.get("mts_dialog") or {}, dev.get("aci_bench/whole_note") or {}
            line = (
                f"| {row['epoch']} | {row['step']} | {_fmt(row.get('train_loss'))} | {_fmt(mts.get('rougeL'))} | "
                f"{_fmt(aci.get('rougeLsum'))} | {_fmt(mts.get('copied_4gram_share'))} |"
            )
            if extracted:
                ex = row.get("dev_extracted") or {}
                line += (
                    f" {_fmt((ex.get('mts_dialog') or {}).get('rougeL'))} |"
                    f" {_fmt((ex.get('aci_bench/whole_note') or {}).get('rougeLsum'))} | {_fmt(row.get('extraction_kept'))} |"
                )
            lines.append(line)
    lines += ["", "## Evaluation", ""]
    if evaluation:
        lines.append(evaluation.get("description", ""))
        lines.append("")
        lines.append(_table(evaluation["rows"], evaluation["columns"]))
        if evaluation.get("verdict"):
            lines += ["", evaluation["verdict"]]
    else:
        lines.append("Not evaluated yet: run `noteward eval summarize` with this model.")
    if notes:
        lines += ["", "## Notes", "", notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
