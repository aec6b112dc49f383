"""`noteward bench decode`: decoding speed of a fine-tuned model against its base, same run.

The issue's bar: the shipped model decodes at no less than 0.9x its base. An adapter applied
at load costs llama.cpp two extra matrix products per adapted layer and token; the merged
file (``noteward.llm.merge``) costs what its quantization costs (Q8_0 reads twice the bytes
of the base's Q4_1 per weight). Each row loads its weights once, then the rows take turns
on the same prompt (greedy, cold KV cache), ``repeat`` rounds, so load on a shared machine
hits them alike; the fastest round of each is reported with its ratio to the base.

An adapter entry with a pinned merge (the shipped ``smollm2-135m-clinical``) runs as its
merged file, and the adapter applied at load is timed beside it; one without gets a merged
file built for the bench into the cache folder. Either way the three ways to run it are
compared: base, adapter at load, merged.
"""

from __future__ import annotations

from typing import Any

from noteward.core.errors import UsageError

# A fixed, synthetic visit (no patient's text): long enough that every model writes on.
PROMPT = (
    "Summarize this visit for the chart.\n\n"
    "Doctor: What brings you in today?\n"
    "Patient: I have had a cough for three weeks, worse at night, and some shortness of breath "
    "when I climb stairs. I take lisinopril 10 mg daily for blood pressure and metformin 500 mg "
    "twice a day.\n"
    "Doctor: Any fever, chest pain, or swelling in your legs?\n"
    "Patient: No fever. A little tightness in the chest after coughing. My ankles swell by evening.\n"
    "Doctor: Your blood pressure today is 148 over 92, oxygen saturation 95 percent. I hear some "
    "crackles at both lung bases. We will get a chest X-ray, a BNP level and an echocardiogram, "
    "and I will see you back in one week."
)


def decode_speed(
    model_id: str,
    *,
    threads: int | None = None,
    repeat: int = 3,
    max_tokens: int = 128,
    merge: str = "Q8_0",
) -> dict[str, Any]:
    """Tokens/s of ``model_id``'s base and of the model itself (adapter at load and merged)."""
    from noteward.llm.manifest import ResolvedModel, load_manifest, merged_cache_path, resolve_model
    from noteward.llm.runtime import ModelRuntime

    entry = load_manifest().get(model_id)
    adapter = entry.adapter_file()
    if entry.base is None or adapter is None:
        raise UsageError(
            f"{model_id!r} is a base model; give a fine-tuned model (an adapter entry)."
        )
    rows: list[tuple[str, ResolvedModel]] = [("base", resolve_model(entry.base.id))]
    tuned = resolve_model(entry.id)
    if tuned.merged:
        # what ran before the merge was pinned, in the same run: the adapter applied at load
        rows.append(("adapter at load", resolve_model(entry.id, merge=False)))
        rows.append((f"merged {entry.raw['merge'].get('type', 'Q8_0')} (pinned)", tuned))
    else:
        rows.append(("adapter at load", tuned))
        from noteward.llm.merge import merge_lora

        path = merged_cache_path(entry.id, adapter.sha256, merge)
        if not path.exists():
            merge_lora(entry.model_file().path, adapter.path, path, merge)
        rows.append(
            (
                f"merged {merge} (built for this bench)",
                ResolvedModel(
                    entry.id, path, entry.sha256, None, entry.n_ctx, entry.prompt_style, merged=True
                ),
            )
        )
    runtimes = [(label, ModelRuntime(rm, threads=threads, n_ctx=1024)) for label, rm in rows]
    best: dict[str, dict[str, Any]] = {}
    try:
        prompts = {label: rt.format_prompt(PROMPT) for label, rt in runtimes}
        for _ in range(max(1, repeat)):
            for label, rt in runtimes:
                res = rt.generate(prompts[label], max_tokens=max_tokens, reuse_cache=False)
                row = {
                    "tokens_per_s": round(res.tokens_per_s, 2),
                    "generated_tokens": res.generated_tokens,
                    "file": rt.model.path.name,
                }
                if label not in best or row["tokens_per_s"] > best[label]["tokens_per_s"]:
                    best[label] = row
    finally:
        for _label, rt in runtimes:
            rt.close()
    base_tps = best["base"]["tokens_per_s"]
    for row in best.values():
        row["ratio_to_base"] = round(row["tokens_per_s"] / base_tps, 3) if base_tps else None
    return {
        "model": model_id,
        "base": entry.base.id,
        "threads": runtimes[0][1].threads,
        "repeat": repeat,
        "rows": best,
    }
