"""De-identified export from a real vault: no names, source ids or identifiers leave it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSPHRASE, require_shared

PATIENT = "63ee2253-bdd5-da55-2ad2-b4984d0ad700"  # the Synthea patient with the fewest notes


def _one_patient_folder(src: Path, dst: Path) -> Path:
    """The shared Synthea files cut down to one patient (a temp copy of synthetic data)."""
    dst.mkdir()
    for f in ("Patient", "DocumentReference", "Condition", "MedicationRequest"):
        lines = []
        for line in (src / f"{f}.000.ndjson").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            ref = (r.get("subject") or {}).get("reference", "")
            if r.get("id") == PATIENT or ref.endswith(PATIENT):
                lines.append(line)
        (dst / f"{f}.000.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


@pytest.fixture
def loaded_vault(vault: Any, tmp_path: Path) -> Any:
    from noteward.ingest.importer import import_paths

    src = require_shared("synthea_fhir")
    import_paths(vault, [_one_patient_folder(src, tmp_path / "synthea")])
    return vault


def _phi_strings(vault: Any) -> list[str]:
    p = vault.patients()[0]
    out = [p.source_id]
    for tok in p.name.split():
        out.append(tok)
        bare = tok.rstrip("0123456789")
        if len(bare) >= 3:
            out.append(bare)
    for ident in p.details.get("identifiers", []):
        out.append(ident["value"])
    out += p.details.get("telecom", [])
    for a in p.details.get("address", []):
        out += a.get("line", [])
        if a.get("city"):
            out.append(a["city"])
        if a.get("postalCode"):
            out.append(a["postalCode"])
    for n in vault.notes(p.id):
        if n.source_id:
            out.append(n.source_id)
    if p.birth_date:
        out.append(p.birth_date)
    return [s for s in out if s]


@pytest.mark.parametrize("fmt", ["jsonl", "fhir"])
def test_deidentified_export_has_no_phi(loaded_vault: Any, tmp_path: Path, fmt: str) -> None:
    from noteward.deid.export import write_export
    from noteward.store import audit

    v = loaded_vault
    p = v.patients()[0]
    out = tmp_path / f"export.{fmt}"
    counts = write_export(v, [p.id], out, fmt=fmt, deidentify=True, mode="surrogate")
    assert counts["patients"] == 1 and counts["notes"] == p.note_count > 0
    raw = out.read_text(encoding="utf-8")
    if fmt == "fhir":
        bundle = json.loads(raw)
        from fhir.resources.R4B.bundle import Bundle

        Bundle.model_validate(bundle)  # valid FHIR R4 (R4B) resources
        texts = [
            base64.b64decode(e["resource"]["content"][0]["attachment"]["data"]).decode()
            for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"
        ]
        assert len(texts) == p.note_count
        raw = raw + "\n".join(texts)
    phi = _phi_strings(v)
    assert len(phi) >= 5
    leaked = [s for s in phi if s.lower() in raw.lower()]
    assert leaked == []
    assert p.id in raw  # only Noteward's own ids identify the records
    ev = audit.events(v.conn, 5)
    assert ev[0]["action"] == "export_deidentified"
    assert ev[0]["object_ids"] == [p.id]
    assert ev[0]["counts"]["notes"] == p.note_count
    assert not any(s.lower() in json.dumps(ev).lower() for s in phi)


def test_reexport_is_stable(loaded_vault: Any, tmp_path: Path) -> None:
    from noteward.deid.export import write_export

    ids = [p.id for p in loaded_vault.patients()]
    write_export(loaded_vault, ids, tmp_path / "a.jsonl")
    write_export(loaded_vault, ids, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_identified_export_is_audited(loaded_vault: Any, tmp_path: Path) -> None:
    from noteward.deid.export import write_export
    from noteward.store import audit

    p = loaded_vault.patients()[0]
    write_export(loaded_vault, [p.id], tmp_path / "id.jsonl", deidentify=False)
    assert p.name in (tmp_path / "id.jsonl").read_text(encoding="utf-8")
    assert audit.events(loaded_vault.conn, 1)[0]["action"] == "export_identified"
    assert audit.verify(loaded_vault.conn) == []


def test_export_refuses_to_overwrite(loaded_vault: Any, tmp_path: Path) -> None:
    from noteward.core.errors import UsageError
    from noteward.deid.export import write_export

    out = tmp_path / "x.jsonl"
    out.write_text("keep me")
    with pytest.raises(UsageError, match="already exists"):
        write_export(loaded_vault, [loaded_vault.patients()[0].id], out)
    assert out.read_text() == "keep me"


def test_export_command(loaded_vault: Any, vault_path: Path, tmp_path: Path, capsys: Any) -> None:
    from noteward.cli import main

    loaded_vault.close()
    pf = tmp_path / "pass"
    pf.write_text(PASSPHRASE)
    out = tmp_path / "cli.jsonl"
    args = ["export", "--vault", str(vault_path), "--passphrase-file", str(pf), "--all"]
    assert main([*args, str(out)]) == 2  # neither --deidentify nor --identified
    assert main([*args, "--deidentify", "--format", "jsonl", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["kind"] == "patient" and "name" not in lines[0]
    assert all(set(r) <= {"kind", "patient", "note", "date", "type", "text", "sex", "birth_date", "deceased", "facts",
                          "deid"} for r in lines)
    assert all(r["deid"]["mode"] == "recall" for r in lines)  # text leaving the vault: the recall point


# -- an approved summary as a FHIR R4 Composition (identified, admin only, audited) -------------

EDITED = "Follow-up in two weeks, agreed with the family."


def _approved_summary(vault: Any, *, approve: bool = True) -> tuple[str, list[Any]]:
    """A stored summary citing the patient's first three notes (sentences copied from them, as
    the composer copies), approved by dr_lee with one line edited and one written by hand."""
    from noteward.core.models import SourceSpan, Summary, SummarySentence
    from noteward.llm.summarizer import approval_text, save_approved, save_summary

    p = vault.patients()[0]
    notes = vault.notes(p.id)[:3]
    sentences = []
    for section, n in zip(("Problems", "Medications", "Plan"), notes, strict=True):
        line = " ".join(n.text.split()[:8])
        start = n.text.index(n.text.split()[0])
        sentences.append(SummarySentence(line, section, [SourceSpan(n.id, start, start + 20)], 1.0, True,
                                         date=(n.date or "")[:10] or None, origin="extract"))
    sentences.append(SummarySentence("Started on warfarin for a clot.", "Medications", [], 0.1, False, origin="model"))
    summary = Summary(p.id, sentences, {"note_ids": [n.id for n in vault.notes(p.id)]},
                      {"id": "tiny", "sha256": "ab" * 32}, prompt_version="grounded-v1")
    sid = save_summary(vault, summary)
    if approve:
        text = approval_text(summary).replace(sentences[2].text, sentences[2].text + " (checked)")
        save_approved(vault, sid, text + f"- {EDITED}\n", approver="dr_lee")
    return sid, notes


def test_an_approved_summary_exports_as_a_valid_fhir_composition(loaded_vault: Any, tmp_path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    from noteward.deid.export import write_composition
    from noteward.store import audit

    v = loaded_vault
    p = v.patients()[0]
    sid, cited = _approved_summary(v)
    out = tmp_path / "summary.fhir.json"
    counts = write_composition(v, p.id, out)
    assert out.stat().st_mode & 0o777 == 0o600
    raw = json.loads(out.read_text(encoding="utf-8"))
    bundle = Bundle.model_validate(raw)  # valid FHIR R4 (R4B) resources
    assert bundle.type == "document" and bundle.identifier is not None and bundle.timestamp is not None
    resources = [e["resource"] for e in raw["entry"]]
    comp = resources[0]
    assert comp["resourceType"] == "Composition" and comp["status"] == "final"
    assert {"system": "http://loinc.org", "code": "60591-5", "display": "Patient summary Document"} in comp["type"]["coding"]
    fid = lambda x: x.replace("_", "-")  # noqa: E731 - FHIR ids take '-' for Noteward's '_'
    assert comp["subject"]["reference"] == f"Patient/{fid(p.id)}"
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    assert by_ref[f"Patient/{fid(p.id)}"]["name"] == [{"text": p.name}]  # identified: the patient's name
    # author = the approver, who also attested it at the time of approval
    author = by_ref[comp["author"][0]["reference"]]
    assert author["resourceType"] == "Practitioner" and author["name"] == [{"text": "dr_lee"}]
    assert comp["author"][0]["display"] == "dr_lee"
    from noteward.store import summaries

    stored = summaries.get(v, sid)
    assert stored is not None and comp["date"] == stored.approved_at
    assert comp["attester"][0]["time"] == stored.approved_at and comp["attester"][0]["mode"] == "legal"
    # one section per section of the approved text, its narrative the approved lines
    assert [s["title"] for s in comp["section"]] == ["Problems", "Medications", "Plan"]
    divs = {s["title"]: s["text"]["div"] for s in comp["section"]}
    assert all(d.startswith('<div xmlns="http://www.w3.org/1999/xhtml">') for d in divs.values())
    assert "(checked)" in divs["Plan"] and "agreed with the family" in divs["Plan"]
    assert "warfarin" not in json.dumps(comp)  # the unedited unsupported sentence was never approved
    # every cited note is a DocumentReference entry, with its date, referenced by its section
    entries = {s["title"]: [e["reference"] for e in s.get("entry", [])] for s in comp["section"]}
    for section, n in zip(("Problems", "Medications", "Plan"), cited, strict=True):
        ref = f"DocumentReference/{fid(n.id)}"
        assert ref in entries[section]  # the edited Plan line still cites its note
        doc = by_ref[ref]
        assert doc["subject"]["reference"] == f"Patient/{fid(p.id)}"
        assert doc["date"].startswith(n.date[:10]) and doc["context"]["period"]["start"].startswith(n.date[:10])
    docs = [r for r in resources if r["resourceType"] == "DocumentReference"]
    assert len(docs) == len(cited) == counts["cited_notes"] and counts["sections"] == 3
    # audited: ids and counts only
    ev = audit.events(v.conn, 1)[0]
    assert ev["action"] == "export_identified_composition"
    assert sorted(ev["object_ids"]) == sorted([p.id, sid])
    assert ev["counts"] == {"sections": 3, "cited_notes": 3, "fhir": 1}
    assert not any(s.lower() in json.dumps(ev).lower() for s in _phi_strings(v) + ["dr_lee"])
    assert audit.verify(v.conn) == []


def test_a_composition_is_refused_without_an_approved_summary(loaded_vault: Any, tmp_path: Path) -> None:
    from noteward.core.errors import UsageError
    from noteward.deid.export import write_composition

    v = loaded_vault
    p = v.patients()[0]
    out = tmp_path / "none.json"
    before = v.counts()["audit"]
    with pytest.raises(UsageError, match="no approved summary"):
        write_composition(v, p.id, out)
    _approved_summary(v, approve=False)  # a machine summary nobody approved is not enough
    with pytest.raises(UsageError, match="no approved summary"):
        write_composition(v, p.id, out)
    assert not out.exists() and not list(tmp_path.glob(".noteward-export-*"))
    assert v.counts()["audit"] == before + 1  # the summary's creation only, no export


def test_a_composition_needs_an_admin_once_the_vault_has_users(loaded_vault: Any, tmp_path: Path) -> None:
    from noteward.core.errors import AccessDeniedError
    from noteward.deid.export import write_composition
    from noteward.store.vault import Vault

    v = loaded_vault
    p = v.patients()[0]
    _approved_summary(v)
    v.add_user("nurse_kim", "clinician", "nurse kim's passphrase")  # a real account
    nurse = Vault.open(v.path, "nurse kim's passphrase", user="nurse_kim")
    try:
        with pytest.raises(AccessDeniedError, match="admin"):
            write_composition(nurse, p.id, tmp_path / "c.json")
    finally:
        nurse.close()
    assert not (tmp_path / "c.json").exists()
    assert v.user.is_admin  # the vault's first admin
    assert write_composition(v, p.id, tmp_path / "c.json")["sections"] == 3


def test_export_command_writes_the_approved_summary(loaded_vault: Any, vault_path: Path, tmp_path: Path,
                                                     capsys: Any) -> None:
    from noteward.cli import main

    p = loaded_vault.patients()[0]
    pf = tmp_path / "pass"
    pf.write_text(PASSPHRASE)
    args = ["export", "--vault", str(vault_path), "--passphrase-file", str(pf), "--patient", p.id, "--approved-summary"]
    out = tmp_path / "c.json"
    loaded_vault.close()
    assert main([*args, str(out)]) == 2  # nothing approved yet
    assert "no approved summary" in capsys.readouterr().err
    from noteward.store.vault import Vault

    with Vault.open(vault_path, PASSPHRASE) as v:
        _approved_summary(v)
    assert main([*args, "--deidentify", str(out)]) == 2  # it is identified data
    assert main([*args, "--format", "jsonl", str(out)]) == 2
    assert main([*args, "--format", "fhir", str(out)]) == 0
    assert "IDENTIFIED" in capsys.readouterr().out
    assert json.loads(out.read_text(encoding="utf-8"))["entry"][0]["resource"]["resourceType"] == "Composition"
