"""Importers on a real SQLCipher vault: text, CSV, FHIR; cleaning, duplicates, strictness."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from noteward.core.errors import CancelledError, InputError
from noteward.ingest.chunking import chunk_note
from noteward.ingest.cleaning import decode_text
from noteward.ingest.importer import import_paths
from noteward.ingest.textfiles import split_header
from tests.conftest import require_shared


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


def _patient(pid: str = "p1", name: str = "Testy") -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"use": "official", "family": "Mc" + name, "given": [name]}],
            "gender": "female", "birthDate": "1970-01-02"}


def _doc(pid: str = "p1", text: str = "Cough for 3 days. Start amoxicillin 500 mg.", date: str = "2020-01-01",
         did: str = "d1") -> dict:
    return {"resourceType": "DocumentReference", "id": did, "subject": {"reference": f"Patient/{pid}"},
            "date": date, "type": {"coding": [{"display": "Progress note"}]},
            "author": [{"display": "Dr. Example"}],
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": _b64(text)}}]}


def _ndjson(path: Path, resources: list) -> Path:
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in resources) + "\n")
    return path


def test_synthea_import_counts_and_reimport_adds_nothing(vault, synthea_dir):
    first = import_paths(vault, [synthea_dir])
    assert first.counts["patients"]["imported"] == 9
    assert first.counts["notes"]["imported"] == 1018
    assert first.counts["facts"]["imported"] > 1000
    assert first.problems == []
    before = vault.counts()
    second = import_paths(vault, [synthea_dir])
    assert second.counts["notes"]["imported"] == 0
    assert second.counts["notes"]["skipped"] == 1018
    assert vault.counts()["notes"] == before["notes"]
    assert vault.counts()["chunks"] == before["chunks"]
    big = vault.patient("79a66c97-6131-3213-f3c9-4606946ab056")
    assert big.note_count == 708 and big.deceased and big.deceased_date.startswith("1994-11-11")


def test_chunks_point_into_note_text_and_fts(vault, synthea_dir):
    import_paths(vault, [synthea_dir / "Patient.000.ndjson", synthea_dir / "DocumentReference.000.ndjson"])
    p = vault.patient("63ee2253-bdd5-da55-2ad2-b4984d0ad700")
    notes = {n.id: n for n in vault.notes(p.id)}
    rows = vault.conn.execute(
        'SELECT c.note_id, c.start, c."end", f.text FROM chunks c JOIN chunks_fts f ON f.rowid = c.id'
        " WHERE f.patient_id = ?", (p.id,)).fetchall()
    assert rows
    for note_id, start, end, text in rows:
        assert notes[note_id].text[start:end] == text


@pytest.mark.parametrize(
    "resources, reason",
    [
        (["{not json"], "invalid JSON"),
        ([{"id": "x"}], "no resourceType"),
        ([{**_doc(), "subject": {}}], "no subject"),
        ([{**_doc(), "content": [{"attachment": {"contentType": "text/plain", "data": "@@@"}}]}], "not valid base64"),
        ([{**_doc(), "content": [{"attachment": {"contentType": "application/pdf", "data": "AA=="}}]}], "no text/plain"),
        ([_doc(pid="nobody")], "neither in this import nor in the vault"),
        ([{"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}], "no code text"),
    ],
)
def test_malformed_fhir_is_reported_and_skipped(vault, tmp_path, resources, reason):
    path = _ndjson(tmp_path / "bad.ndjson", [_patient(), _doc(did="ok", text="A good note."), *resources])
    report = import_paths(vault, [path])
    assert report.committed
    assert report.counts["notes"]["imported"] == 1
    msgs = [p.to_json() for p in report.problems]
    assert any(reason in m["reason"] and m["file"] == "bad.ndjson" for m in msgs), msgs
    assert all("A good note" not in json.dumps(m) for m in msgs)  # no note text in reports


def test_strict_aborts_and_changes_nothing(vault, tmp_path):
    path = _ndjson(tmp_path / "bad.ndjson", [_patient(), _doc(), "{broken"])
    before = vault.counts()
    with pytest.raises(InputError) as exc:
        import_paths(vault, [path], strict=True)
    assert exc.value.exit_code == 4
    assert vault.counts() == before


def test_duplicates_and_near_duplicates(vault, tmp_path):
    path = _ndjson(tmp_path / "a.ndjson", [
        _patient(),
        _doc(did="d1", date="2020-01-01"),
        _doc(did="d2", date="2020-01-01"),  # same patient, date and text: duplicate
        _doc(did="d3", date="2021-06-01"),  # same text, other date: near-duplicate
        _doc(did="d4", text="   \n  "),     # empty
    ])
    report = import_paths(vault, [path])
    notes = report.counts["notes"]
    assert notes["imported"] == 2 and notes["near_duplicates"] == 1 and notes["skipped"] == 2
    assert report.empty_skipped == 1
    stored = vault.notes(vault.patient("p1").id)
    assert [n.near_duplicate_of is not None for n in stored] == [False, True]
    assert stored[1].near_duplicate_of == stored[0].id


def test_bundle_with_urn_references(vault, tmp_path):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p9", "resource": _patient("p9", "Bundled")},
        {"fullUrl": "urn:uuid:d9", "resource": {**_doc("p9"), "subject": {"reference": "urn:uuid:p9"}}},
    ]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    report = import_paths(vault, [path])
    assert report.counts["notes"]["imported"] == 1
    assert vault.patient("p9").name == "Bundled McBundled"


def test_text_folder_and_headers(vault, tmp_path):
    folder = tmp_path / "notes" / "Jane Roe"
    folder.mkdir(parents=True)
    (folder / "2021-03-04-visit.txt").write_text("Knee pain, start ibuprofen 400 mg.\n")
    (tmp_path / "notes" / "one.txt").write_text(
        "Patient: John Doe\nPatient-ID: MRN-77\nDate: 2022-02-02\nType: Clinic note\n\nBody text here.\n")
    report = import_paths(vault, [tmp_path / "notes"])
    assert report.counts["notes"]["imported"] == 2
    jane = vault.patient("Jane Roe")
    assert vault.notes(jane.id)[0].date == "2021-03-04"
    john = vault.patient("MRN-77")
    note = vault.notes(john.id)[0]
    assert john.name == "John Doe" and note.text == "Body text here.\n" and note.type == "Clinic note"


def test_csv_with_column_mapping(vault, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('MRN,Body,When\nA1,"Fever, start paracetamol 1 g.",2020-05-05\nA2,,2020-05-06\n,orphan,2020-01-01\n')
    report = import_paths(vault, [path], csv_map={"patient_id": "MRN", "text": "Body", "date": "When"})
    assert report.counts["notes"]["imported"] == 1
    assert report.empty_skipped == 1
    assert any(p.line == 4 and "no patient" in p.reason for p in report.problems)
    bad = import_paths(vault, [path], csv_map={"text": "Nope"})
    assert "not in the header" in bad.problems[0].reason


@pytest.mark.parametrize(
    "raw, expected, repaired",
    [
        (b"\xef\xbb\xbfplain", "plain", False),
        ("caf\u00e9".encode("cp1252"), "caf\u00e9", True),
        ("caf\u00e9".encode().decode("cp1252").encode("utf-8"), "caf\u00e9", True),
        (b"a\r\nb\x00c", "a\nbc", False),
    ],
)
def test_decode_text(raw, expected, repaired):
    assert decode_text(raw) == (expected, repaired)


def test_header_only_when_block_is_complete():
    assert split_header("Patient: X\n\nbody")[0] == {"patient_name": "X"}
    assert split_header("Date: yesterday the patient fell\nmore text")[0] == {}


def test_oversized_note_is_refused_clearly(vault, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEWARD_MAX_NOTE_MB", "1")
    folder = tmp_path / "P"
    folder.mkdir()
    (folder / "big.txt").write_bytes(b"x" * 2_000_000)
    (folder / "small.txt").write_text("Small note.")
    report = import_paths(vault, [folder])
    assert report.counts["notes"]["imported"] == 1
    assert "2.0 MB" in report.problems[0].reason and "limit" in report.problems[0].reason


def test_cancel_rolls_back(vault, synthea_dir):
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done > 100:
            cancel.set()

    with pytest.raises(CancelledError):
        import_paths(vault, [synthea_dir], progress=progress, cancel=cancel)
    assert vault.counts()["notes"] == 0 and vault.counts()["patients"] == 0


def test_chunker_sections_and_bounds():
    text = "HPI: cough.\nMEDICATIONS: lisinopril 10 mg daily.\nThe following were done:\n- x-ray\nPlan:\nrecheck"
    chunks = chunk_note(text)
    assert [c.section for c in chunks] == ["History", "Medications", "Plan"]
    for c in chunks:
        assert 0 <= c.start < c.end <= len(text) and text[c.start:c.end].strip() == text[c.start:c.end]


def test_demo_sample_imports(vault):
    from noteward.settings import resources_dir

    report = import_paths(vault, [resources_dir() / "demo" / "notes"])
    assert report.counts["patients"]["imported"] == 2 and report.counts["notes"]["imported"] == 4
    assert report.problems == []


def test_shared_data_rule():
    # The shared corpus the tests rely on is where the conftest says it is.
    assert (require_shared("synthea_fhir") / "Patient.000.ndjson").exists()
