"""store.patients / encounters / facts / notes / imports on a real SQLCipher vault file."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteward.core.models import Note, Patient
from noteward.store import audit, encounters, facts, imports, notes, patients
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE

CREATED = "2024-01-01T00:00:00+00:00"


def _note(nid: str, pid: str, text: str, date: str | None, **kw: object) -> Note:
    return Note(id=nid, patient_id=pid, text=text, date=date, content_hash="h-" + text, **kw)  # type: ignore[arg-type]


def test_patients_round_trip(vault: Vault, vault_path: Path):
    with vault.transaction():
        patients.add(vault, Patient("pt_a", "src-a", "Ann Example", "1950-02-03", "female", True,
                                    "2020-01-01", details={"city": "Springfield"}), CREATED)
        patients.add(vault, Patient("pt_b", None, "No Source"), CREATED)
        patients.add_many(vault, [Patient("pt_c", "src-c", "Copy C"), Patient("pt_d", None, "Copy D")], CREATED)
    vault.close()
    with Vault.open(vault_path, PASSPHRASE) as v:  # committed to the file, not just the connection
        assert patients.ids_by_source(v) == {"src-a": "pt_a", "src-c": "pt_c"}
        assert patients.all_ids(v) == ["pt_a", "pt_b", "pt_c", "pt_d"]
        assert patients.count(v) == 4
        a = v.patient("src-a")
        assert (a.name, a.birth_date, a.sex, a.deceased, a.deceased_date, a.details) == (
            "Ann Example", "1950-02-03", "female", True, "2020-01-01", {"city": "Springfield"})
        b = v.patient("pt_b")
        assert (b.source_id, b.deceased, b.details, b.birth_date) == (None, False, {}, None)


def test_a_writer_outside_a_transaction_is_rolled_back_with_it(vault: Vault):
    with pytest.raises(RuntimeError), vault.transaction():
        patients.add(vault, Patient("pt_x", "src-x", "X"), CREATED)
        raise RuntimeError("abort")
    assert patients.count(vault) == 0


def test_encounters_and_facts(vault: Vault):
    with vault.transaction():
        patients.add(vault, Patient("pt_a", "src-a", "A"), CREATED)
        encounters.add(vault, encounters.Encounter("en_1", "pt_a", "enc-1", "2024-02-01", "2024-02-02", "visit"))
        encounters.add(vault, encounters.Encounter("en_2", "pt_a", None))
        facts.add(vault, facts.Fact("pt_a", "condition", "cond-1", "44054006", "Diabetes", "active",
                                    "2020-01-01", None, "en_1"))
        facts.add(vault, facts.Fact("pt_a", "medication", None, None, "Metformin 500 mg"))
    assert encounters.ids_by_source(vault) == {"enc-1": "en_1"}
    assert facts.source_keys(vault) == {("condition", "cond-1")}
    assert [f["display"] for f in vault.facts("pt_a")] == ["Metformin 500 mg", "Diabetes"]
    assert vault.facts("pt_a", "condition")[0] == {
        "kind": "condition", "code": "44054006", "display": "Diabetes", "status": "active",
        "date": "2020-01-01", "end_date": None}


def test_notes_fingerprints_and_ids(vault: Vault):
    with vault.transaction():
        patients.add(vault, Patient("pt_a", "src-a", "A"), CREATED)
        patients.add(vault, Patient("pt_b", "src-b", "B"), CREATED)
        notes.add(vault, _note("nt_2", "pt_a", "later", "2024-03-01", author="Dr Who", source="text"),
                  import_id="im_1", created_at=CREATED)
        notes.add(vault, _note("nt_1", "pt_a", "earlier", "2024-01-01", near_duplicate_of=None),
                  import_id="im_1", created_at=CREATED)
        notes.add_many(vault, [_note("nt_3", "pt_b", "bee", None)], created_at=CREATED)
    fps = notes.fingerprints(vault)
    # Oldest first (NULL dates sort first in SQLite), each a typed tuple.
    assert [(f.id, f.patient_id, f.date) for f in fps] == [
        ("nt_3", "pt_b", None), ("nt_1", "pt_a", "2024-01-01"), ("nt_2", "pt_a", "2024-03-01")]
    assert fps[1].content_hash == "h-earlier"
    assert sorted(notes.ids_for_patient(vault, "pt_a")) == ["nt_1", "nt_2"]
    assert notes.ids_for_patient(vault, "nobody") == []
    everything = notes.all_notes(vault)
    assert [n.id for n in everything] == ["nt_1", "nt_2", "nt_3"]
    assert everything[1] == vault.note("nt_2")
    assert everything[1].author == "Dr Who" and everything[1].text == "later"


def test_import_record_commits_with_its_audit_event(vault: Vault):
    counts = {"notes": {"imported": 3, "skipped": 1, "near_duplicates": 0},
              "patients": {"imported": 1, "skipped": 0, "near_duplicates": 0}}
    with vault.transaction():
        imports.record(vault, "im_1", CREATED, CREATED, counts, errors=2)
    last = audit.events(vault.conn, 1)[0]
    assert (last["action"], last["object_ids"], last["counts"]) == (
        "import", ["im_1"], {"notes": 3, "patients": 1, "errors": 2})
    assert audit.verify(vault.conn) == []
    assert vault.conn.execute("SELECT id FROM imports").fetchall() == [("im_1",)]
