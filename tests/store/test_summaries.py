"""store.summaries on a real SQLCipher vault file: provenance, approval, audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteward.core.errors import NotewardError
from noteward.core.models import Patient
from noteward.store import audit, patients, summaries
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE

MODEL = {"id": "tiny-model", "sha256": "ab" * 32}


def _add(v: Vault, sid: str, pid: str | None = "pt_a") -> None:
    summaries.add(v, sid, pid, MODEL, "grounded-v1", {"note_ids": ["nt_1"], "dates": ["2024-01-01", None]},
                  {"sentences": [{"text": "Metformin 500 mg – twice daily."}]}, {"sentences": 1, "supported": 1})


@pytest.fixture
def with_patient(vault: Vault) -> Vault:
    with vault.transaction():
        patients.add(vault, Patient("pt_a", "src-a", "A"), "2024-01-01T00:00:00+00:00")
    return vault


def test_add_and_get_round_trip(with_patient: Vault, vault_path: Path):
    _add(with_patient, "sm_1")
    with_patient.close()
    with Vault.open(vault_path, PASSPHRASE) as v:
        s = summaries.get(v, "sm_1")
        assert s is not None
        assert (s.patient_id, s.model_id, s.model_sha256, s.prompt_version) == ("pt_a", *MODEL.values(), "grounded-v1")
        assert s.covers == {"note_ids": ["nt_1"], "dates": ["2024-01-01", None]}
        assert s.body["sentences"][0]["text"] == "Metformin 500 mg – twice daily."
        assert s.approved_text is None and s.approved_at is None and s.created_at
        assert summaries.get(v, "sm_nope") is None
        ev = audit.events(v.conn, 2)[1]  # the event before this unlock
        assert (ev["action"], ev["object_ids"], ev["counts"]) == (
            "summary.create", ["pt_a", "sm_1"], {"sentences": 1, "supported": 1})


def test_latest_and_approval(with_patient: Vault):
    assert summaries.latest_id(with_patient, "pt_a") is None
    _add(with_patient, "sm_1")
    with_patient.conn.execute("UPDATE summaries SET created_at = '2000-01-01' WHERE id = 'sm_1'")
    _add(with_patient, "sm_2")
    assert summaries.latest_id(with_patient, "pt_a") == "sm_2"
    assert summaries.approved(with_patient) == []
    summaries.approve(with_patient, "sm_1", "Reviewed: metformin only.")
    summaries.approve(with_patient, "sm_2", "")  # an empty approval is not training material
    s = summaries.get(with_patient, "sm_1")
    assert s is not None and s.approved_text == "Reviewed: metformin only." and s.approved_at
    assert summaries.approved(with_patient) == [
        summaries.ApprovedSummary("sm_1", "pt_a", {"note_ids": ["nt_1"], "dates": ["2024-01-01", None]},
                                  "Reviewed: metformin only.")]
    assert audit.events(with_patient.conn, 1)[0]["action"] == "summary.approve"
    assert audit.verify(with_patient.conn) == []


def test_approving_an_unknown_summary_changes_nothing(with_patient: Vault):
    before = with_patient.counts()["audit"]
    with pytest.raises(NotewardError, match="Unknown summary id"):
        summaries.approve(with_patient, "sm_missing", "text")
    assert with_patient.counts()["audit"] == before


def test_a_summary_without_a_patient(vault: Vault):
    _add(vault, "sm_free", None)
    s = summaries.get(vault, "sm_free")
    assert s is not None and s.patient_id is None
    assert audit.events(vault.conn, 1)[0]["object_ids"] == ["sm_free"]
