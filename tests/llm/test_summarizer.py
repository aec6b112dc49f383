"""Grounded summaries end to end with the real SmolLM2 model and a real vault."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from noteward import cli
from noteward.core.ids import new_id
from noteward.core.models import SUMMARY_SECTIONS
from noteward.llm.grounding import content_words
from noteward.llm.summarizer import SummaryService, latest_summary, load_summary, save_approved
from noteward.settings import user_data_dir

pytestmark = pytest.mark.slow

NOTE = (
    "\ufeffChief complaint: chest pain for 2 days.\r\n"
    "History: Patient has a history of hypertension and type 2 diabetes.\r\n"
    "Medications: lisinopril 10 mg daily; metformin 500 mg twice daily.\r\n"
    "Allergies: penicillin (hives).\r\n"
    "Exam: blood pressure 150/90, heart rate 88. Café au lait spots noted.\r\n"
    "Plan: start aspirin 81 mg daily. Follow up in 2 weeks.\r\n"
)


def _check_shape(data: dict[str, Any]) -> None:
    assert set(data) == {"patient", "model", "sentences", "timings"}
    assert set(data["model"]) == {"id", "sha256"}
    assert set(data["timings"]) == {
        "retrieval_ms",
        "prompt_tokens",
        "ttft_ms",
        "generated_tokens",
        "total_ms",
    }
    for s in data["sentences"]:
        assert set(s) == {
            "text", "section", "sources", "support", "supported", "date", "origin", "conflicts"
        }
        assert s["section"] in SUMMARY_SECTIONS
        assert s["origin"] in ("model", "extract", "fact")
        assert 0.0 <= s["support"] <= 1.0 and isinstance(s["supported"], bool)
        for src in s["sources"]:
            assert set(src) == {"note_id", "start", "end"} and src["start"] < src["end"]


def test_summarize_text_file_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "note.txt"
    f.write_bytes(NOTE.encode("utf-8"))
    assert cli.main(["summarize", "--text-file", str(f), "--json", "--threads", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    _check_shape(data)
    assert data["patient"] is None
    # no --model: the manifest's default (the fine-tuned adapter), its provenance hash the adapter's
    from noteward.llm.manifest import load_manifest

    default = load_manifest().get()
    assert data["model"]["id"] == default.id == "smollm2-135m-clinical"
    assert data["model"]["sha256"] == default.raw["adapter"]["sha256"]
    assert data["timings"]["prompt_tokens"] > 0
    text = NOTE[1:]  # BOM removed, CRLF kept
    supported = [s for s in data["sentences"] if s["supported"]]
    assert len(supported) >= 5
    for s in supported:
        assert all(src["note_id"] == "input" for src in s["sources"])
        cited = " ".join(text[src["start"] : src["end"]] for src in s["sources"])
        words = set(content_words(s["text"]))
        assert len(words & set(content_words(cited))) / len(words) >= 0.6, s
    sections = {s["section"] for s in supported}
    assert {"Medications", "Allergies", "Plan"} <= sections
    meds = " ".join(s["text"] for s in data["sentences"] if s["section"] == "Medications")
    assert "lisinopril 10 mg" in meds


def test_missing_model_exits_5_naming_the_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overlay = user_data_dir() / "models" / "manifest.json"
    overlay.parent.mkdir(parents=True, exist_ok=True)
    overlay.write_text(
        json.dumps(
            {
                "default": "ghost",
                "models": [
                    {
                        "id": "ghost",
                        "source": {
                            "kind": "package",
                            "package": "noteward-ghost-weights",
                            "module": "noteward_ghost_weights_xyz",
                            "file": "g.gguf",
                        },
                        "sha256": "1" * 64,
                    }
                ],
            }
        )
    )
    f = tmp_path / "n.txt"
    f.write_text("Patient has asthma.", encoding="utf-8")
    assert cli.main(["summarize", "--text-file", str(f)]) == 5
    assert "noteward-ghost-weights" in capsys.readouterr().err


def test_non_utf8_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "latin1.txt"
    f.write_bytes("Café visit".encode("latin-1"))
    assert cli.main(["summarize", "--text-file", str(f), "--no-model"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_huge_input_fits_the_context(smollm_runtime: Any) -> None:
    """200 KB of notes with an unlimited prompt cap: the context budget still holds."""
    svc = SummaryService(
        model_id="smollm2-135m-instruct-q4_1", max_new_tokens=16, prompt_token_cap=10**9
    )
    svc._runtime = smollm_runtime
    lines = [
        f"Visit {i}: metformin {500 + i} mg daily; blood pressure {100 + i % 50}/{60 + i % 30}."
        for i in range(3000)
    ]
    text = "\n".join(lines)
    assert len(text) > 150_000
    res = svc.summarize_text(text)
    t = res.timings
    assert 0 < t["prompt_tokens"] <= smollm_runtime.n_ctx - 16
    assert t["prompt_tokens"] + t["generated_tokens"] <= smollm_runtime.n_ctx
    assert res.sentences and all(s.sources for s in res.sentences if s.supported)


@pytest.fixture
def synthea_vault(vault: Any, synthea_dir: Path) -> Any:
    from noteward.ingest.importer import import_paths

    import_paths(vault, [synthea_dir])
    return vault


def test_summarize_patient_streams_saves_and_goes_out_of_date(
    synthea_vault: Any, summary_service: Any
) -> None:
    v = synthea_vault
    p = next(p for p in v.patients() if (p.source_id or "").startswith("63ee2253"))
    events: list[str] = []
    threads: set[int] = set()
    res = summary_service.summarize_patient(
        v,
        p.id,
        on_sentence=lambda s: (events.append("sentence"), threads.add(threading.get_ident())),
        on_token=lambda t: (events.append("token"), threads.add(threading.get_ident())),
    )
    assert (
        events and events[0] == "sentence"
    )  # a grounded sentence is ready before the model's first token
    assert "token" in events
    # both callbacks on the caller's thread (in the app they emit Qt signals: a plain Python
    # thread such as the model's owner must not)
    assert threads == {threading.get_ident()}
    assert events.count("sentence") == len(res.sentences)
    data = res.to_json()
    _check_shape(data)
    assert data["patient"] == p.id
    notes = {n.id: n.text for n in v.notes(p.id)}
    for s in res.sentences:
        for src in s.sources:
            assert src.note_id in notes and 0 <= src.start < src.end <= len(notes[src.note_id])
    # ibuprofen's orders are stopped (2018) though the newest note (2022) still lists it
    assert any(s.section == "Stopped medications" and "ibuprofen" in s.text for s in res.sentences)
    assert not any(s.section == "Medications" and "ibuprofen" in s.text for s in res.sentences)
    stored = latest_summary(v, p.id)
    assert stored is not None and stored["id"] == res.summary_id
    assert stored["model_id"] == "smollm2-135m-instruct-q4_1" and len(stored["model_sha256"]) == 64
    assert stored["prompt_version"] == "grounded-v1"
    assert set(stored["covers"]["note_ids"]) == set(notes)
    assert stored["out_of_date"] is False
    assert stored["body"]["sentences"] == data["sentences"]
    save_approved(v, res.summary_id, "Reviewed: ibuprofen only.", approver="dr_lee")
    approved = load_summary(v, res.summary_id)
    assert (approved["approved_text"], approved["approved_by"]) == ("Reviewed: ibuprofen only.", "dr_lee")
    with v.transaction() as conn:
        conn.execute(
            "INSERT INTO notes(id, patient_id, text, content_hash, date, created_at) VALUES (?,?,?,?,?,?)",
            (
                new_id("nt"),
                p.id,
                "New visit. Patient reports cough.",
                "h-new",
                "2030-01-01",
                "2030-01-01",
            ),
        )
    assert load_summary(v, res.summary_id)["out_of_date"] is True
    actions = [r[0] for r in v.conn.execute("SELECT action FROM audit").fetchall()]
    assert "summary.create" in actions and "summary.approve" in actions


def test_long_record_summarized_within_context(synthea_vault: Any, summary_service: Any) -> None:
    """The 708-note patient: selection keeps the prompt inside the budget."""
    v = synthea_vault
    p = next(p for p in v.patients() if (p.source_id or "").startswith("79a66c97"))
    res = summary_service.summarize_patient(v, p.id, save=False)
    assert len(res.covers["note_ids"]) == 708
    assert 0 < res.timings["prompt_tokens"] <= summary_service.prompt_token_cap
    meds = [s for s in res.sentences if s.section == "Medications" and s.supported]
    assert any("lisinopril 10 mg" in s.text.lower() for s in meds)
