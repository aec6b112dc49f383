"""Score a model in training on the development split, through transformers.

Used after every epoch, on the CPU (``noteward finetune --recipe reference-v2``) and on a
GPU (``noteward.training.gpu_job``): greedy decoding of every development prompt, stopped
at the chat template's end-of-turn token, then ROUGE-1/2/L/Lsum (``noteward.llm.metrics``)
per source and for ACI-Bench's whole note (its four divisions joined, against the full
reference note). These figures come from the float weights in memory. A full fine-tune ships a rank-r
extraction of its update, so ``evaluate_extraction`` scores that too (merged back into the
base in torch), and the epoch is chosen on it. The artifact that ships (adapter merged at
Q8_0, run by llama.cpp) is scored by ``noteward eval summarize``.

Needs torch and transformers only (rouge-score when it is importable; without it the
outputs are kept and ``score_outputs`` scores them later on a machine that has it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from noteward.llm import metrics

DEV_FILE = "dev.json"
ACI_ORDER = ("subjective", "objective_exam", "objective_results", "assessment_and_plan")


def save_dev(workdir: Path, items: list[dict[str, Any]]) -> Path:
    """Write the development items (prompt, reference, source text, ids) as JSON."""
    path = workdir / DEV_FILE
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return path


def load_dev(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / DEV_FILE
    return list(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else []


def stop_token_ids(tok: Any, end_of_turn: str) -> list[int]:
    """Token ids that end generation: the end-of-turn token and the tokenizer's eos."""
    ids = [i for i in tok(end_of_turn.strip(), add_special_tokens=False)["input_ids"][:1]]
    if tok.eos_token_id is not None:
        ids.append(int(tok.eos_token_id))
    return list(dict.fromkeys(ids))


def generate(
    model: Any,
    tok: Any,
    prompts: list[str],
    stop_ids: list[int],
    max_new_tokens: int,
    batch: int = 8,
) -> list[str]:
    """Greedy continuations of chat-formatted ``prompts`` (left-padded batches), stop tokens cut."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    old_side = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    # BOS as trainer.encode adds it (Gemma wants one; SmolLM2's tokenizer adds none)
    bos = tok.bos_token if getattr(tok, "add_bos_token", False) and tok.bos_token else ""
    try:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths together
        texts: dict[int, str] = {}
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            enc = tok([bos + prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.no_grad(), _autocast(device):
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stop_ids,
                    pad_token_id=tok.pad_token_id,
                )
            for row, i in enumerate(idx):
                new = gen[row, enc["input_ids"].shape[1] :].tolist()
                cut = next((n for n, t in enumerate(new) if t in stop_ids), len(new))
                texts[i] = tok.decode(new[:cut], skip_special_tokens=True).strip()
        out = [texts[i] for i in range(len(prompts))]
    finally:
        tok.padding_side = old_side
        if was_training:
            model.train()
    return out


def _autocast(device: Any) -> Any:
    import contextlib

    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def score_outputs(items: list[dict[str, Any]], outputs: list[str]) -> dict[str, Any]:
    """ROUGE per source (MTS-Dialog items; ACI-Bench divisions and whole notes), plus copy share."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    visits: dict[str, dict[str, str]] = defaultdict(dict)
    notes: dict[str, tuple[str, str]] = {}
    for item, out in zip(items, outputs, strict=True):
        group = "mts_dialog" if item["source"] == "mts-dialog" else f"aci_bench/{item['kind']}"
        for k, v in metrics.rouge(item["target"], out).items():
            per[group][k].append(v)
        share = metrics.copied_ngram_share(out, item.get("source_text", ""))
        if share is not None:
            per[group]["copied_4gram_share"].append(share)
        if item["source"] == "aci-bench":
            visit = str(item.get("meta", {}).get("visit", item["ref"]))
            visits[visit][item["kind"]] = out
            notes[visit] = (str(item.get("meta", {}).get("note", "")), item.get("source_text", ""))
    for visit, parts in visits.items():
        whole = "\n\n".join(parts[d] for d in ACI_ORDER if d in parts)
        note, dialogue = notes[visit]
        for k, v in metrics.rouge(note, whole).items():
            per["aci_bench/whole_note"][k].append(v)
        share = metrics.copied_ngram_share(whole, dialogue)
        if share is not None:
            per["aci_bench/whole_note"]["copied_4gram_share"].append(share)
    return {
        group: {"items": len(next(iter(vals.values()), [])), **{k: metrics.mean(v) for k, v in vals.items()}}
        for group, vals in sorted(per.items())
    }


def evaluate(
    model: Any,
    tok: Any,
    items: list[dict[str, Any]],
    end_of_turn: str,
    *,
    max_new_tokens: int = 384,
    batch: int = 8,
) -> dict[str, Any]:
    """Generate for every development item and score it; {"scores", "outputs", "scored"}."""
    prompts = [
        str(tok.apply_chat_template([{"role": "user", "content": it["prompt"]}], tokenize=False, add_generation_prompt=True))
        for it in items
    ]
    outputs = generate(model, tok, prompts, stop_token_ids(tok, end_of_turn), max_new_tokens, batch)
    try:
        scores = score_outputs(items, outputs)
        scored = True
    except ImportError:  # rouge-score absent (a bare GPU box): score the saved outputs later
        scores, scored = {}, False
    return {"scores": scores, "outputs": outputs, "scored": scored}


def evaluate_extraction(
    model: Any,
    tok: Any,
    items: list[dict[str, Any]],
    end_of_turn: str,
    base_linear: dict[str, Any],
    rank: int,
    **kwargs: Any,
) -> dict[str, Any]:
    """``evaluate`` on the weights that ship from a full fine-tune: the rank-``rank``
    extraction of the update (``export.lora_from_delta``) added back to the base weights.

    The model's own (trained) weights are put back afterwards, so training goes on from them.
    Returns ``evaluate``'s dict plus ``extraction_kept`` (share of the update's squared norm
    the extraction carries) and ``extract_seconds`` (the SVDs and the merge-back).
    """
    import time

    from noteward.training import export, trainer

    t = time.monotonic()
    tuned = trainer.lora_state(model)
    lora = export.lora_from_delta(base_linear, tuned, rank)
    kept = export.delta_kept(base_linear, tuned, lora)
    merged = export.merge_extraction({k: base_linear[k] for k in tuned if k in base_linear}, lora)
    extract_s = time.monotonic() - t
    missing = [k for k in merged if k not in model.state_dict()]
    if missing:
        raise KeyError(f"extracted weights name tensors the model lacks: {missing[:3]}")
    model.load_state_dict(merged, strict=False)
    try:
        ev = evaluate(model, tok, items, end_of_turn, **kwargs)
    finally:
        model.load_state_dict(tuned, strict=False)
    return {**ev, "extraction_kept": round(kept, 4), "extract_seconds": round(extract_s, 1)}
