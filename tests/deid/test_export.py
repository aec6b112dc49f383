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
