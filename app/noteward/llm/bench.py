"""`noteward bench summarize`: speed of grounded summaries, with raw llama.cpp as baseline.

For each shared patient (default: the fewest-notes one, 63ee2253, and the 708-note one,
79a66c97) in a temporary encrypted vault: retrieval (selection) ms, prompt tokens, time to
the first summary sentence, time to the model's first token, tokens/s, total, and — in the
same run, same prompt, same sampling, cold KV cache for both — plain
``Llama.create_completion`` for the overhead ratio (our model-pass wall time / raw).
Also cancel-to-idle: a long prompt is cancelled mid-read and the time until the model
thread is idle, plus the CPU the process used from 0.5 s to 1.5 s after cancel, is reported.
Peak RSS is the process's ru_maxrss. ``model_check`` is the cost of the sha256 check that
runs on every model load (MB/s and seconds per file: the base GGUF, the adapter, and the
merged weights when the entry pins a merge).
"""

from __future__ import annotations

import resource
import threading
import time
from typing import Any

from noteward.core.errors import UsageError
from noteward.llm.evaluation import SyntheaVault, patient_by_prefix, shared_data_dir
from noteward.llm.summarizer import SummaryService

BENCH_PATIENTS = ("63ee2253", "79a66c97")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_model_check(model_id: str | None = None, repeat: int = 3) -> list[dict[str, Any]]:
    """Time the sha256 check of each file of a model (fastest of ``repeat``, page cache warm)."""
    from noteward.llm.manifest import load_manifest, sha256_file
    from noteward.settings import load_settings

    manifest = load_manifest()
    entry = manifest.get(model_id or load_settings().model or None)
    files = [("base", entry.model_file())]
    adapter = entry.adapter_file()
    if adapter is not None:
        files.append(("adapter", adapter))
    merged = entry.merged_file()
    if merged is not None and merged[0].path.is_file():  # built on first use, checked on every load
        files.append(("merged", merged[0]))
    out = []
    for role, mf in files:
        seconds = float("inf")
        for _ in range(max(1, repeat)):
            t = time.perf_counter()
            ok = sha256_file(mf.path) == mf.sha256
            seconds = min(seconds, time.perf_counter() - t)
        mb = mf.path.stat().st_size / 1e6
        out.append({
            "file": role,
            "name": mf.path.name,
            "mb": round(mb, 1),
            "seconds": round(seconds, 3),
            "mb_per_s": round(mb / seconds, 1) if seconds else None,
            "ok": ok,
        })
    return out


def measure_cancel(svc: SummaryService, prompt_tokens: int = 3000) -> dict[str, float]:
    """Cancel a long prompt 0.3 s into reading it; time to idle and CPU afterwards."""
    from noteward.core.errors import CancelledError

    rt = svc.runtime
    text = " ".join(
        f"Blood pressure was {100 + i % 60} over {60 + i % 30} at visit {i}." for i in range(400)
    )
    tokens = rt.tokenize(rt.format_prompt(text))[: min(prompt_tokens, rt.n_ctx - 64)]
    rt.reset()
    cancel = threading.Event()
    fut = rt.submit(tokens, max_tokens=32, cancel=cancel, reuse_cache=False)
    time.sleep(0.3)
    t_cancel = time.perf_counter()
    cancel.set()
    try:
        fut.result(timeout=30)
        finished_early = 1.0
    except CancelledError:
        finished_early = 0.0
    idle_ms = (time.perf_counter() - t_cancel) * 1000
    time.sleep(max(0.0, 0.5 - (time.perf_counter() - t_cancel)))
    c0 = time.process_time()
    time.sleep(1.0)
    cpu_ms = (time.process_time() - c0) * 1000
    return {
        "cancel_to_idle_ms": round(idle_ms, 1),
        "cpu_ms_0.5_to_1.5s_after": round(cpu_ms, 1),
        "finished_before_cancel": finished_early,
    }


def run_bench(
    patients: tuple[str, ...] = BENCH_PATIENTS,
    model_id: str | None = None,
    threads: int | None = None,
    repeat: int = 2,
) -> dict[str, Any]:
    """Run the benchmark and return its figures (fastest of ``repeat`` runs of each)."""
    fhir = shared_data_dir() / "synthea_fhir"
    if not fhir.is_dir():
        raise UsageError(
            f"The shared Synthea data is not at {fhir}: `bench summarize` summarizes its patients. "
            "Set NOTEWARD_SHARED_DATA to the folder that holds synthea_fhir/."
        )
    out: dict[str, Any] = {"patients": {}}
    out["model_check"] = measure_model_check(model_id)
    svc = SummaryService(model_id=model_id, threads=threads)
    try:
        t = time.perf_counter()
        svc.runtime  # load outside the timed runs  # noqa: B018
        out["model"] = dict(svc.model_info)
        out["threads"] = svc.runtime.threads
        out["load_ms"] = round((time.perf_counter() - t) * 1000, 1)
        with SyntheaVault(fhir) as vault:
            for prefix in patients:
                try:
                    p = patient_by_prefix(vault, prefix)
                except LookupError:
                    raise UsageError(
                        f"No patient with an id starting {prefix!r} in the shared Synthea data at "
                        f"{fhir}. Give --patient with one of its patients' id prefixes."
                    ) from None
                from noteward.llm.summarizer import SourceNote, select

                notes = [SourceNote(n.id, n.text, n.date) for n in vault.notes(p.id)]
                runs: list[dict[str, float]] = []
                raws: list[dict[str, Any]] = []
                r: Any = None
                for _ in range(max(1, repeat)):
                    # ours and raw alternate, each from a cold KV cache, so load on a shared
                    # machine hits both alike; the fastest run of each is reported
                    svc.runtime.reset()
                    r = svc.summarize_patient(vault, p.id, save=False)
                    runs.append(dict(r.timings))
                    sel = select(notes, vault.facts(p.id), unit_cache=svc._unit_cache)
                    prompt, _ids, _n = svc.build_prompt(sel)
                    toks = svc.runtime.tokenize(prompt)
                    gen = max(1, int(r.timings.get("generated_tokens", 1)))
                    raws.append(svc.runtime.raw_completion(toks, gen))
                tm = min(runs, key=lambda t: t["total_ms"])
                raw = min(raws, key=lambda x: x["total_ms"])
                out["patients"][prefix] = {
                    "notes": len(notes),
                    "retrieval_ms": round(tm["retrieval_ms"], 1),
                    "prompt_tokens": int(tm.get("prompt_tokens", 0)),
                    "first_sentence_ms": round(tm["first_sentence_ms"], 1),
                    "ttft_ms": round(tm.get("ttft_ms", 0.0), 1),
                    "generated_tokens": int(tm.get("generated_tokens", 0)),
                    "tokens_per_s": round(tm.get("tokens_per_s", 0.0), 1),
                    "model_ms": round(tm.get("model_ms", 0.0), 1),
                    "total_ms": round(tm["total_ms"], 1),
                    "raw_llama_ms": round(raw["total_ms"], 1),
                    "raw_generated_tokens": raw["generated_tokens"],
                    "overhead_ratio_model_pass": (
                        round(tm.get("model_ms", 0.0) / raw["total_ms"], 3)
                        if raw["total_ms"]
                        else None
                    ),
                    "overhead_ratio_total": (
                        round(tm["total_ms"] / raw["total_ms"], 3) if raw["total_ms"] else None
                    ),
                    "all_total_ms": [round(t["total_ms"], 1) for t in runs],
                    "all_raw_ms": [round(x["total_ms"], 1) for x in raws],
                    "sentences": len(r.sentences),
                    "supported": sum(s.supported for s in r.sentences),
                }
        out["cancel"] = measure_cancel(svc)
    finally:
        svc.close()
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out
