"""Before/after evaluation of a fine-tuned adapter with the summary issue's own eval.

Runs ``noteward.llm.evaluation.run_eval`` (MTS-Dialog validation, ACI-Bench validation,
the three held-out Synthea patients; ROUGE-L, supported share, hallucinated-number rate,
key-fact recall, plus the lead-3 / TextRank / extractive baselines) for the base models and
the adapter, and decides whether the adapter may become the default: it must beat every
base model and every extractive baseline on ROUGE-L and key-fact recall, with at least
0.90 of its sentences supported and no hallucinated numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASELINES = ("lead-3", "textrank", "noteward-extractive")
MIN_SUPPORTED = 0.90
COLUMNS = [
    "dataset", "system", "items", "ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum", "supported", "hallucinated numbers",
    "hallucinated numbers, constraint off", "copied 4-grams", "key-fact recall", "mean ms",
]


def run(
    model_ids: list[str], limit: int | None, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The summary eval (``noteward.llm.evaluation.run_eval``) for ``model_ids``."""
    from noteward.llm.evaluation import run_eval

    return run_eval(limit=limit, models=model_ids, progress=progress)


def merge(*results: dict[str, Any]) -> dict[str, Any]:
    """Combine eval results of separate runs (same limit) into one."""
    out: dict[str, Any] = {"limit": results[0].get("limit"), "models": {}, "datasets": {}, "aci_divisions": {}}
    for r in results:
        if r.get("limit") != out["limit"]:
            raise ValueError("eval results with different --limit cannot be merged")
        out["models"].update(r.get("models", {}))
        for key in ("datasets", "aci_divisions"):
            for ds, systems in r.get(key, {}).items():
                out[key].setdefault(ds, {}).update(systems)
    return out


def verdict(res: dict[str, Any], model_id: str, base_ids: list[str]) -> dict[str, Any]:
    """Does ``model_id`` beat the bases and baselines (the bar for becoming the default)?"""
    mine = f"noteward+{model_id}"
    rivals = [f"noteward+{b}" for b in base_ids] + list(BASELINES)
    checks: list[dict[str, Any]] = []
    for ds, systems in res["datasets"].items():
        m = systems.get(mine)
        if m is None:
            checks.append({"check": f"{ds}: evaluated", "ok": False})
            continue
        present = [systems[r] for r in rivals if r in systems]
        if m.get("rougeL_f") is not None:
            best = max((r["rougeL_f"] or 0.0) for r in present) if present else 0.0
            checks.append({"check": f"{ds}: ROUGE-L {m['rougeL_f']:.3f} > best other {best:.3f}", "ok": m["rougeL_f"] > best})
        if m.get("key_fact_recall") is not None:
            best = max((r.get("key_fact_recall") or 0.0) for r in present) if present else 0.0
            ok = m["key_fact_recall"] > best or m["key_fact_recall"] == 1.0
            checks.append({"check": f"{ds}: key-fact recall {m['key_fact_recall']:.3f} > best other {best:.3f}", "ok": ok})
        share = m.get("supported_share")
        checks.append({"check": f"{ds}: supported {share} >= {MIN_SUPPORTED}", "ok": share is not None and share >= MIN_SUPPORTED})
        rate = m.get("hallucinated_number_rate")
        checks.append({"check": f"{ds}: hallucinated-number rate {rate} == 0", "ok": not rate})
    return {"model": model_id, "passes": all(c["ok"] for c in checks), "checks": checks}


def table(res: dict[str, Any]) -> dict[str, Any]:
    """Rows for the model card's table: every system of every dataset, then every ACI-Bench
    division (``eval summarize``'s figures, the same columns)."""
    rows = []
    tables = list(res["datasets"].items())
    tables += [(f"aci_bench / {d}", systems) for d, systems in res.get("aci_divisions", {}).items()]
    for ds, systems in tables:
        for name, m in systems.items():
            rows.append(
                {
                    "dataset": ds,
                    "system": name,
                    "items": m.get("items"),
                    "ROUGE-1": m.get("rouge1_f"),
                    "ROUGE-2": m.get("rouge2_f"),
                    "ROUGE-L": m.get("rougeL_f"),
                    "ROUGE-Lsum": m.get("rougeLsum_f"),
                    "supported": m.get("supported_share"),
                    "hallucinated numbers": m.get("hallucinated_number_rate"),
                    "hallucinated numbers, constraint off": m.get("hallucinated_number_rate_no_constraint"),
                    "copied 4-grams": m.get("copied_4gram_share"),
                    "key-fact recall": m.get("key_fact_recall"),
                    "mean ms": round(m["mean_ms"]) if m.get("mean_ms") is not None else None,
                }
            )
    return {"columns": COLUMNS, "rows": rows}


def load(path: Path) -> dict[str, Any]:
    """A saved eval result (the JSON `noteward eval summarize --json` prints)."""
    return dict(json.loads(path.read_text(encoding="utf-8")))
