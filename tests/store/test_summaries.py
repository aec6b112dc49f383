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
    summaries.approve(with_patient, "sm_1", "Reviewed: metformin only.", approver="dr_lee")
    summaries.approve(with_patient, "sm_2", "", approver="dr_lee")  # an empty approval is not training material
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
        summaries.approve(with_patient, "sm_missing", "text", approver="dr_lee")
    assert with_patient.counts()["audit"] == before


def test_a_summary_without_a_patient(vault: Vault):
    _add(vault, "sm_free", None)
    s = summaries.get(vault, "sm_free")
    assert s is not None and s.patient_id is None
    assert audit.events(vault.conn, 1)[0]["object_ids"] == ["sm_free"]


def test_approval_round_trip_with_approver_and_utc_time(with_patient: Vault, vault_path: Path):
    from datetime import UTC, datetime, timedelta

    _add(with_patient, "sm_1")
    before = datetime.now(UTC).replace(microsecond=0)
    summaries.approve(with_patient, "sm_1", "Reviewed: metformin only.", approver="dr_lee")
    after = datetime.now(UTC)
    with_patient.close()
    with Vault.open(vault_path, PASSPHRASE) as v:
        s = summaries.get(v, "sm_1")
        assert s is not None
        assert (s.approved_text, s.approved_by) == ("Reviewed: metformin only.", "dr_lee")
        assert s.approved_at is not None
        when = datetime.fromisoformat(s.approved_at)
        assert when.utcoffset() == timedelta(0)  # stored in UTC
        assert before <= when <= after
        # the approver's name is not written into the audit trail: ids and counts only
        ev = [e for e in audit.events(v.conn, 10) if e["action"] == "summary.approve"]
        assert ev and "dr_lee" not in repr(ev)


def test_an_approval_needs_an_approver(with_patient: Vault):
    _add(with_patient, "sm_1")
    with pytest.raises(NotewardError, match="approver"):
        summaries.approve(with_patient, "sm_1", "text", approver="  ")
    assert summaries.get(with_patient, "sm_1").approved_text is None  # type: ignore[union-attr]


def test_an_approval_from_before_approvers_still_loads(with_patient: Vault):
    # what the migration leaves for a summary approved by an older Noteward: no approver
    _add(with_patient, "sm_old")
    with with_patient.transaction() as conn:
        conn.execute(
            "UPDATE summaries SET approved_text = 'Old approval.', approved_at = '2024-02-01T10:00:00+00:00'"
            " WHERE id = 'sm_old'"
        )
    s = summaries.get(with_patient, "sm_old")
    assert s is not None and s.approved_text == "Old approval." and s.approved_by is None
    assert summaries.latest_approved_id(with_patient, "pt_a") == "sm_old"


def test_a_newer_machine_summary_is_kept_beside_the_approved_one(with_patient: Vault):
    _add(with_patient, "sm_1")
    with_patient.conn.execute("UPDATE summaries SET created_at = '2000-01-01' WHERE id = 'sm_1'")
    summaries.approve(with_patient, "sm_1", "Reviewed.", approver="dr_lee")
    _add(with_patient, "sm_2")  # a newer machine summary
    assert summaries.latest_id(with_patient, "pt_a") == "sm_2"
    assert summaries.latest_approved_id(with_patient, "pt_a") == "sm_1"
    first, second = summaries.get(with_patient, "sm_1"), summaries.get(with_patient, "sm_2")
    assert first is not None and first.approved_text == "Reviewed." and first.approved_by == "dr_lee"
    assert second is not None and second.approved_text is None and second.approved_by is None
    assert summaries.latest_approved_id(with_patient, "pt_nobody") is None


def test_approver_name_is_the_signed_in_user_or_the_os_login(vault: Vault, monkeypatch: pytest.MonkeyPatch):
    import getpass
    from types import SimpleNamespace

    monkeypatch.setattr(getpass, "getuser", lambda: "oslogin")
    assert summaries.approver_name(vault) == "admin"  # signed in as the vault's first admin
    signed_in = SimpleNamespace(user=SimpleNamespace(name="dr_lee", role="clinician"))
    assert summaries.approver_name(signed_in) == "dr_lee"  # type: ignore[arg-type]
    no_accounts = SimpleNamespace(user=None)  # a caller with no signed-in user
    assert summaries.approver_name(no_accounts) == "oslogin"  # type: ignore[arg-type]
