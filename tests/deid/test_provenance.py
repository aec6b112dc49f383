"""Training data from a vault goes through the recall point and carries its provenance;
the fine-tuning pipeline refuses anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deid.test_export import loaded_vault  # noqa: F401  (the real-vault fixture)


def test_provenance_names_engine_rules_and_mode() -> None:
    from noteward.deid.export import provenance, rules_sha256

    p = provenance("recall")
    assert p["engine"].startswith("noteward-deid/") and p["mode"] == "recall"
    assert p["rules_sha256"] == rules_sha256() and len(p["rules_sha256"]) == 64


@pytest.mark.parametrize(
    "record",
    [
        {"kind": "note", "text": "Pt John Smith seen 3/4."},  # raw vault text
        {"kind": "note", "text": "x", "deid": {"engine": "noteward-deid/0.1.0", "rules_sha256": "0" * 64,
                                              "mode": "default"}},  # cleaned for the view only
        {"kind": "note", "text": "x", "deid": {"engine": "other", "rules_sha256": "0" * 64, "mode": "recall"}},
        {"kind": "note", "text": "x", "deid": {"engine": "noteward-deid/0.1.0", "mode": "recall"}},
    ],
)
def test_records_without_recall_provenance_are_refused(record: dict[str, Any]) -> None:
    from noteward.deid.export import ProvenanceError, require_recall_provenance

    with pytest.raises(ProvenanceError, match="recall-mode"):
        require_recall_provenance(record)


def test_training_text_is_recall_point(deid: Any) -> None:
    from noteward.deid.export import require_recall_provenance, training_text

    rec = require_recall_provenance(training_text("Hx MI '92, son Nick visited. Dr. Bakaitis aware."))
    assert "'92" not in rec["text"] and "Nick" not in rec["text"] and "Bakaitis" not in rec["text"]
    assert "[DATE]" in rec["text"] and "[NAME]" in rec["text"]


@pytest.mark.shared_data
def test_identified_export_is_refused_and_deidentified_export_is_read(loaded_vault: Any,  # noqa: F811
    tmp_path: Path) -> None:
    from noteward.deid.export import ProvenanceError, read_training_export, write_export

    raw = tmp_path / "identified.jsonl"
    write_export(loaded_vault, [p.id for p in loaded_vault.patients()], raw, deidentify=False)
    with pytest.raises(ProvenanceError):
        read_training_export(raw)
    out = tmp_path / "deid.jsonl"
    write_export(loaded_vault, [p.id for p in loaded_vault.patients()], out, deidentify=True)
    for line in out.read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["deid"]["mode"] == "recall"
    notes = read_training_export(out)
    assert notes and all(n["kind"] == "note" for n in notes)


@pytest.mark.shared_data
def test_finetuning_pipeline_refuses_raw_vault_text(loaded_vault: Any, monkeypatch: Any) -> None:  # noqa: F811
    """The 'vault' training source takes text only through training_text and checks its
    provenance: a de-identifier that hands back raw text (faked here, the one fault the
    real engine cannot be made to show) stops the build instead of leaking notes."""
    import noteward.deid.export as deid_export
    from noteward.training import data

    note = loaded_vault.notes(loaded_vault.patients()[0].id)[0]
    with loaded_vault.transaction() as conn:
        conn.execute(
            "INSERT INTO summaries(id, patient_id, created_at, model_id, model_sha256, prompt_version, covers, body,"
            " approved_text, approved_at) VALUES ('sm_p1', ?, '2021-05-07', 'm', 'x', 'grounded-v1', ?, '{}', ?,"
            " '2021-05-07')",
            (note.patient_id, json.dumps({"note_ids": [note.id]}), "Problems:\n- hypertension"),
        )
    monkeypatch.setattr(deid_export, "training_text", lambda text, patient=None: {"text": text})
    with pytest.raises(deid_export.ProvenanceError):
        list(data.vault_examples(loaded_vault, 640))


def test_rules_hash_covers_every_word_list_the_engine_reads() -> None:
    """A list that changes what is found must change the provenance hash."""
    from noteward.deid import export, lists

    listed = {lists.NAMES_FILE, lists.PLACES_FILE, lists.ALLOW_FILE, lists.DRUGS_FILE}
    assert listed <= set(export._RULE_FILES)
