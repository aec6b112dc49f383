"""Hostile input found by the hardening campaign (issue 13, defect 4 and the importer items
of 11): every bad record is skipped and reported with its file and line or resource, the
good records of the same file are imported, and ``--strict`` refuses (exit 4) with nothing
imported. None of these may crash the import."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from noteward.core.errors import InputError
from noteward.ingest.chunking import chunk_note
from noteward.ingest.importer import import_paths
from tests.conftest import PASSPHRASE
from tests.support.cli import noteward


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


def _patient(pid: str = "p1", **extra: object) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"use": "official", "family": "Roe", "given": ["Ann"]}],
            "gender": "female", "birthDate": "1970-01-02", **extra}


def _doc(did: str = "d1", text: str = "Cough for 3 days.", date: object = "2020-01-01", **extra: object) -> dict:
    return {"resourceType": "DocumentReference", "id": did, "subject": {"reference": "Patient/p1"}, "date": date,
            "content": [{"attachment": {"contentType": "text/plain", "data": _b64(text)}}], **extra}


def _encounter(eid: str = "e1", start: object = "2020-01-01T10:00:00Z") -> dict:
    return {"resourceType": "Encounter", "id": eid, "subject": {"reference": "Patient/p1"},
            "period": {"start": start, "end": "2020-01-01T11:00:00Z"}}


DEEP = "[" * 10_000 + "]" * 10_000


def _write_ndjson(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


# Each row: a bad NDJSON line among good ones, and words the problem's reason must hold.
BAD_LINES = [
    pytest.param(DEEP, "nested", id="json-nested-10000-levels"),
    pytest.param('{"resourceType": "Patient", "id": "p9", "x": ' + DEEP + "}", "nested", id="nested-inside-resource"),
    pytest.param('{"resourceType": "Patient", "id": "p9", "n": ' + "1" * 5000 + "}", "invalid JSON", id="huge-integer"),
    pytest.param(_doc("d9", date={"not": "a date"}), "date", id="doc-date-object"),
    pytest.param(_doc("d9", date=20200101), "date", id="doc-date-number"),
    pytest.param({**_doc("d9"), "id": {"x": 1}}, "id", id="doc-id-object"),
    pytest.param({**_doc("d9"), "id": 42}, "id", id="doc-id-number"),
    pytest.param(_patient("p9", birthDate=19700102), "birthDate", id="patient-birthdate-number"),
    pytest.param(_patient("p9", birthDate=["1970"]), "birthDate", id="patient-birthdate-list"),
    pytest.param(_patient("p9", birthDate="last tuesday"), "birthDate", id="patient-birthdate-not-a-date"),
    pytest.param(_encounter("e9", start=123), "period.start", id="encounter-start-123"),
    pytest.param(_encounter("e9", start="soon"), "period.start", id="encounter-start-not-a-date"),
    pytest.param('{"resourceType": "Patient", "id": "p9", "name": [{"text": "A\\ud800B"}]}', "Unicode",
                 id="lone-surrogate-in-name"),
    pytest.param({"resourceType": "Bundle", "entry": "not a list"}, "entry", id="bundle-entry-not-a-list"),
]


@pytest.mark.parametrize("bad, reason", BAD_LINES)
def test_bad_fhir_line_is_reported_and_neighbours_imported(vault, tmp_path, bad, reason):
    path = _write_ndjson(tmp_path / "mixed.ndjson", [_patient(), _encounter(), bad, _doc("d1", "A good note.")])
    report = import_paths(vault, [path])
    assert report.committed
    assert report.counts["patients"]["imported"] == 1
    assert report.counts["encounters"]["imported"] == 1
    assert report.counts["notes"]["imported"] == 1
    problems = [p.to_json() for p in report.problems]
    assert len(problems) == 1, problems
    assert problems[0]["file"] == "mixed.ndjson" and problems[0]["line"] == 3, problems
    assert reason in problems[0]["reason"], problems
    assert "good note" not in json.dumps(problems)


@pytest.mark.parametrize("bad, reason", BAD_LINES[:1] + BAD_LINES[3:4] + BAD_LINES[10:11])
def test_bad_fhir_line_under_strict_imports_nothing(vault, tmp_path, bad, reason):
    path = _write_ndjson(tmp_path / "mixed.ndjson", [_patient(), bad, _doc("d1", "A good note.")])
    before = vault.counts()
    with pytest.raises(InputError) as exc:
        import_paths(vault, [path], strict=True)
    assert exc.value.exit_code == 4
    assert vault.counts() == before


def test_deeply_nested_json_file_is_reported(vault, tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "deep.json").write_text(DEEP)
    _write_ndjson(data / "good.ndjson", [_patient(), _doc()])
    report = import_paths(vault, [data])
    assert report.counts["notes"]["imported"] == 1
    assert [(p.file, "nested" in p.reason) for p in report.problems] == [("deep.json", True)]


def test_bad_bundle_entry_keeps_the_other_entries(vault, tmp_path):
    bundle = {"resourceType": "Bundle", "entry": [
        {"resource": _patient()}, ["not", "an", "entry"], {"resource": _doc("d1", date=7)}, {"resource": _doc("d2")},
    ]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    report = import_paths(vault, [tmp_path / "b.json"])
    assert report.counts["patients"]["imported"] == 1 and report.counts["notes"]["imported"] == 1
    assert sorted(p.resource or "" for p in report.problems) == ["DocumentReference entry #3", "entry #2"]


def test_fhir_note_over_the_limit_is_refused(vault, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEWARD_MAX_NOTE_MB", "1")
    path = _write_ndjson(tmp_path / "big.ndjson", [_patient(), _doc("big", "x" * 1_500_000), _doc("small", "Small.")])
    report = import_paths(vault, [path])
    assert report.counts["notes"]["imported"] == 1
    assert len(report.problems) == 1
    p = report.problems[0]
    assert p.line == 2 and "limit" in p.reason and "1.5 MB" in p.reason


def test_invalid_utf8_in_ndjson_is_repaired_and_counted(vault, tmp_path):
    path = tmp_path / "latin.ndjson"
    lines = [json.dumps(_patient()).encode(), json.dumps(_patient("p2", name=[{"text": "Zoë Müller"}]),
                                                          ensure_ascii=False).encode("cp1252")]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = import_paths(vault, [path])
    assert report.counts["patients"]["imported"] == 2
    assert report.repaired_encoding == 1
    assert vault.patient("p2").name == "Zoë Müller"


def test_csv_row_with_more_fields_than_the_header(vault, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("patient_name,text,date\nAnn,Good note one.,2020-01-01\nBob,Bad,2020-01-02,extra,more\n"
                    "Cy,Good note two.,2020-01-03\n")
    report = import_paths(vault, [path])
    assert report.counts["notes"]["imported"] == 2
    assert [(p.file, p.line) for p in report.problems] == [("notes.csv", 3)]
    assert "5 fields" in report.problems[0].reason and "header has 3" in report.problems[0].reason


def test_csv_unterminated_quote_is_reported(vault, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('patient_name,text\nAnn,Good note.\nBob,"never closed\nCy,swallowed\n')
    report = import_paths(vault, [path])
    assert report.counts["notes"]["imported"] == 1
    assert [(p.file, p.line) for p in report.problems] == [("notes.csv", 3)]
    assert "quote" in report.problems[0].reason
    with pytest.raises(InputError):
        import_paths(vault, [path], strict=True)


def test_csv_note_larger_than_csv_field_limit(vault, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("patient_name,text\nAnn,\"" + "word " * 60_000 + "\"\n")
    report = import_paths(vault, [path])
    assert report.problems == [] and report.counts["notes"]["imported"] == 1


@pytest.mark.parametrize("unit", ["word ", "x", "line\n"])
def test_chunker_handles_a_section_of_several_megabytes(unit):
    text = "HPI:\n" + unit * (3_000_000 // len(unit))
    chunks = chunk_note(text)
    assert chunks and all(0 <= c.start < c.end <= len(text) for c in chunks)
    assert all(c.end - c.start <= 1200 for c in chunks)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_large_single_section_note_imports(vault, tmp_path):
    folder = tmp_path / "Ann Roe"
    folder.mkdir()
    (folder / "2020-01-01.txt").write_text("Plan: " + "continue the current treatment " * 50_000)
    report = import_paths(vault, [folder])
    assert report.counts["notes"]["imported"] == 1 and report.problems == []


@pytest.mark.parametrize("name", ["scan.txt", "blob", "photo.md"])
def test_binary_file_in_a_folder_is_reported_not_imported(vault, tmp_path, name):
    folder = tmp_path / "Ann Roe"
    folder.mkdir()
    (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    report = import_paths(vault, [folder])
    assert report.counts["notes"]["imported"] == 0 and report.counts["patients"]["imported"] == 0
    assert vault.counts()["patients"] == 0
    assert [p.file for p in report.problems] == [name] and "binary" in report.problems[0].reason


def test_cli_reports_hostile_folder_and_strict_exits_4(tmp_path):
    data = tmp_path / "in"
    (data / "Ann Roe").mkdir(parents=True)
    (data / "Ann Roe" / "blob.txt").write_bytes(b"\x00\x01\x02binary\xff\xfe" * 100)
    (data / "notes.csv").write_text("patient_name,text\nAnn,Fine.\nBob,x,y\n")
    _write_ndjson(data / "fhir.ndjson", [_patient(), DEEP, _doc("d1", date=5), _doc("d2"), _encounter(start=123)])
    vault = tmp_path / "v.nwv"
    assert noteward("init", "--vault", str(vault), passphrase=PASSPHRASE).returncode == 0
    strict = noteward("import", "--vault", str(vault), "--strict", "--json", str(data), passphrase=PASSPHRASE)
    assert strict.returncode == 4, strict.stderr
    assert json.loads(strict.stdout)["committed"] is False
    pats = noteward("patients", "--vault", str(vault), "--json", passphrase=PASSPHRASE)
    assert json.loads(pats.stdout) == []
    run = noteward("import", "--vault", str(vault), "--json", str(data), passphrase=PASSPHRASE)
    assert run.returncode == 0, run.stderr
    rep = json.loads(run.stdout)
    assert rep["committed"] and rep["counts"]["notes"]["imported"] == 2
    where = sorted((e["file"], e["line"] or 0) for e in rep["errors"])
    assert where == [("blob.txt", 0), ("fhir.ndjson", 2), ("fhir.ndjson", 3), ("fhir.ndjson", 5), ("notes.csv", 3)]


def test_record_of_unknown_patient_is_reported_with_its_file_and_line(vault, tmp_path):
    nobody = {"reference": "Patient/nobody"}
    path = _write_ndjson(tmp_path / "orphans.ndjson", [
        _patient(),
        {**_encounter("e2"), "subject": nobody},
        {**_doc("d2"), "subject": nobody},
        {"resourceType": "Condition", "id": "c2", "subject": nobody, "code": {"text": "Asthma"}},
    ])
    report = import_paths(vault, [path])
    assert [(p.file, p.line) for p in report.problems] == [("orphans.ndjson", 2), ("orphans.ndjson", 3),
                                                           ("orphans.ndjson", 4)]
    assert all("neither in this import nor in the vault" in p.reason for p in report.problems)
