"""The bar a fine-tuned adapter must clear to become the default model."""

from __future__ import annotations

from typing import Any

import pytest

from noteward.training import evaluate

BASES = ["smollm2", "gemma3"]


def _m(rouge: float | None, supported: float, bad: float, facts: float | None = None) -> dict[str, Any]:
    return {"rougeL_f": rouge, "supported_share": supported, "hallucinated_number_rate": bad, "key_fact_recall": facts}


def _results(tuned_mts: dict[str, Any], tuned_syn: dict[str, Any]) -> dict[str, Any]:
    return {
        "limit": 5,
        "models": {"smollm2": "a", "gemma3": "b", "tuned": "c"},
        "datasets": {
            "mts_dialog": {
                "lead-3": _m(0.20, 1.0, 0.0),
                "textrank": _m(0.18, 1.0, 0.0),
                "noteward-extractive": _m(0.22, 1.0, 0.0),
                "noteward+smollm2": _m(0.21, 0.95, 0.0),
                "noteward+gemma3": _m(0.19, 0.93, 0.0),
                "smollm2 (model bullets only)": _m(0.50, 0.2, 0.3),  # not a rival: model-only rows
                "noteward+tuned": tuned_mts,
            },
            "synthea": {
                "lead-3": _m(None, 1.0, 0.0, 0.10),
                "noteward-extractive": _m(None, 1.0, 0.0, 0.60),
                "noteward+smollm2": _m(None, 0.97, 0.0, 0.55),
                "noteward+tuned": tuned_syn,
            },
        },
    }


@pytest.mark.parametrize(
    "tuned_mts, tuned_syn, passes, failing",
    [
        (_m(0.25, 0.95, 0.0), _m(None, 0.96, 0.0, 0.70), True, []),
        (_m(0.22, 0.95, 0.0), _m(None, 0.96, 0.0, 0.70), False, ["mts_dialog: ROUGE-L"]),  # ties do not beat
        (_m(0.25, 0.89, 0.0), _m(None, 0.96, 0.0, 0.70), False, ["mts_dialog: supported"]),
        (_m(0.25, 0.95, 0.01), _m(None, 0.96, 0.0, 0.70), False, ["mts_dialog: hallucinated"]),
        (_m(0.25, 0.95, 0.0), _m(None, 0.96, 0.0, 0.60), False, ["synthea: key-fact"]),
        (_m(0.25, 0.95, 0.0), _m(None, 0.96, 0.0, None), True, []),  # no key facts measured: no check
    ],
)
def test_verdict(tuned_mts: dict[str, Any], tuned_syn: dict[str, Any], passes: bool, failing: list[str]) -> None:
    v = evaluate.verdict(_results(tuned_mts, tuned_syn), "tuned", BASES)
    assert v["passes"] is passes
    failed = [c["check"] for c in v["checks"] if not c["ok"]]
    assert len(failed) == len(failing)
    for prefix, check in zip(failing, failed, strict=True):
        assert check.startswith(prefix)


def test_verdict_fails_when_the_model_was_not_evaluated() -> None:
    res = _results(_m(0.3, 1.0, 0.0), _m(None, 1.0, 0.0, 1.0))
    del res["datasets"]["synthea"]["noteward+tuned"]
    v = evaluate.verdict(res, "tuned", BASES)
    assert not v["passes"]
    assert any(c["check"] == "synthea: evaluated" and not c["ok"] for c in v["checks"])


def test_merge_and_table() -> None:
    res = _results(_m(0.25, 0.95, 0.0), _m(None, 0.96, 0.0, 0.7))
    base = {"limit": 5, "models": {"smollm2": "a"}, "datasets": {"mts_dialog": {"lead-3": _m(0.2, 1.0, 0.0)}}}
    tuned = {"limit": 5, "models": {"tuned": "c"}, "datasets": {"mts_dialog": {"noteward+tuned": _m(0.3, 1.0, 0.0)}}}
    merged = evaluate.merge(base, tuned)
    assert set(merged["datasets"]["mts_dialog"]) == {"lead-3", "noteward+tuned"}
    assert merged["models"] == {"smollm2": "a", "tuned": "c"}
    with pytest.raises(ValueError):
        evaluate.merge(base, {**tuned, "limit": 10})
    t = evaluate.table(res)
    assert t["columns"][0] == "dataset"
    assert len(t["rows"]) == sum(len(v) for v in res["datasets"].values())


def test_the_card_table_has_every_figure_and_the_aci_divisions() -> None:
    res = _results(_m(0.25, 0.95, 0.0), _m(None, 0.96, 0.0, 0.7))
    res["aci_divisions"] = {"subjective": {"tuned (model only, reference-v2 prompt)": _m(0.3, 0.9, 0.0)}}
    t = evaluate.table(res)
    for col in ("ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum", "supported", "hallucinated numbers",
                "hallucinated numbers, constraint off", "copied 4-grams", "key-fact recall"):
        assert col in t["columns"]
    assert len(t["rows"]) == sum(len(v) for v in res["datasets"].values()) + 1
    division = t["rows"][-1]
    assert division["dataset"] == "aci_bench / subjective" and division["ROUGE-L"] == 0.3


def test_merge_keeps_the_aci_divisions() -> None:
    base = {"limit": 5, "models": {"b": "1"}, "datasets": {}, "aci_divisions": {"subjective": {"b (x)": _m(0.1, 1.0, 0.0)}}}
    tuned = {"limit": 5, "models": {"t": "2"}, "datasets": {}, "aci_divisions": {"subjective": {"t (x)": _m(0.2, 1.0, 0.0)}}}
    assert set(evaluate.merge(base, tuned)["aci_divisions"]["subjective"]) == {"b (x)", "t (x)"}
