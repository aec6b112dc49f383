"""Exports of a vault's notes: de-identified (research, training) or identified (audited).

A de-identified export carries only Noteward's opaque ids: no names, source ids, authors
or encounter references; note text goes through the Deidentifier with the patient's own
record as extra PHI; dates are shifted by the patient's offset (surrogate mode) or cut to
the year (tag mode). Every export appends an audit event with ids and counts only.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.errors import UsageError
from noteward.deid.surrogates import Surrogates
from noteward.store import events

if TYPE_CHECKING:
    from noteward.store.vault import Vault

FORMATS = ("jsonl", "fhir")
# Base of the Bundle's fullUrls: absolute (as FHIR asks) and never resolvable.
_BASE = "https://noteward.invalid/fhir"


def _year(value: str | None) -> str | None:
    return value[:4] if value and value[:4].isdigit() else None


def _birth(patient: Any, sur: Surrogates | None) -> str | None:
    """Birth date for a de-identified record: none for anyone over 89 (Safe Harbor)."""
    bd = patient.birth_date
    if not bd or not bd[:4].isdigit():
        return None
    end = patient.deceased_date[:4] if patient.deceased and patient.deceased_date else str(date.today().year)
    if end.isdigit() and int(end) - int(bd[:4]) > 89:
        return None
    return sur.shift_iso(bd[:10]) if sur is not None else bd[:4]


def patient_records(
    vault: Vault,
    patient_ids: list[str],
    deidentify: bool,
    mode: str = "surrogate",
    secret: str | bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], int]]:
    """(patient record, note records, entities replaced) for each patient."""
    deid = None
    if deidentify:
        from noteward.deid.engine import Deidentifier

        deid = Deidentifier()
    done = 0
    for pid in patient_ids:
        p = vault.patient(pid)
        sur = Surrogates(secret, p.id) if deidentify and mode == "surrogate" else None
        facts = vault.facts(p.id)
        if deidentify:
            prec: dict[str, Any] = {
                "patient": p.id,
                "sex": p.sex,
                "birth_date": _birth(p, sur),
                "deceased": p.deceased,
                "facts": [
                    {
                        "kind": f["kind"],
                        "code": f["code"],
                        "display": f["display"],
                        "status": f["status"],
                        "date": sur.shift_iso(f["date"]) if sur else _year(f["date"]),
                    }
                    for f in facts
                ],
            }
        else:
            prec = {
                "patient": p.id,
                "source_id": p.source_id,
                "name": p.name,
                "sex": p.sex,
                "birth_date": p.birth_date,
                "deceased": p.deceased,
                "deceased_date": p.deceased_date,
                "details": p.details,
                "facts": facts,
            }
        notes = []
        n_ent = 0
        vnotes = vault.notes(p.id)
        found = deid.analyze_many([n.text for n in vnotes], patient=p) if deid is not None else []
        for idx, n in enumerate(vnotes):
            if deid is not None:
                res = deid.anonymize(n.text, mode=mode, patient=p, secret=secret, entities=found[idx])
                n_ent += len(res.entities)
                notes.append({
                    "patient": p.id,
                    "note": n.id,
                    "date": sur.shift_iso(n.date) if sur else _year(n.date),
                    "type": n.type,
                    "text": res.text,
                })
            else:
                notes.append({
                    "patient": p.id, "note": n.id, "date": n.date, "type": n.type, "author": n.author,
                    "source": n.source, "source_id": n.source_id, "encounter_id": n.encounter_id, "text": n.text,
                })
            done += 1
            if progress:
                progress(done)
        yield prec, notes, n_ent


def _fhir_id(noteward_id: str) -> str:
    """FHIR ids allow [A-Za-z0-9-.] only; Noteward's ids use an underscore."""
    return noteward_id.replace("_", "-")


def _nw_identifier(noteward_id: str) -> list[dict[str, str]]:
    return [{"system": "urn:noteward:id", "value": noteward_id}]


def _fhir_bundle(items: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    """A FHIR R4 collection Bundle: one Patient and its DocumentReferences per patient.
    Resource ids are Noteward's ids with '-' for '_' (kept exactly in ``identifier``)."""
    entries = []
    for prec, notes in items:
        pid = _fhir_id(prec["patient"])
        patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "identifier": _nw_identifier(prec["patient"])}
        if prec.get("sex") in ("male", "female", "other", "unknown"):
            patient["gender"] = prec["sex"]
        if prec.get("birth_date"):
            patient["birthDate"] = prec["birth_date"]
        if prec.get("name"):
            patient["name"] = [{"text": prec["name"]}]
        entries.append({"fullUrl": f"{_BASE}/Patient/{pid}", "resource": patient})
        for n in notes:
            nid = _fhir_id(n["note"])
            doc: dict[str, Any] = {
                "resourceType": "DocumentReference",
                "id": nid,
                "identifier": _nw_identifier(n["note"]),
                "status": "current",
                "subject": {"reference": f"Patient/{pid}"},
                "content": [{
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "data": base64.b64encode(n["text"].encode("utf-8")).decode("ascii"),
                    }
                }],
            }
            if n.get("type"):
                doc["type"] = {"text": n["type"]}
            if n.get("date") and len(n["date"]) >= 10:
                d = n["date"]
                doc["date"] = d if "T" in d else f"{d[:10]}T00:00:00Z"
            entries.append({"fullUrl": f"{_BASE}/DocumentReference/{nid}", "resource": doc})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write_export(
    vault: Vault,
    patient_ids: list[str],
    out: str | Path,
    fmt: str = "jsonl",
    deidentify: bool = True,
    mode: str = "surrogate",
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write the export file (atomically) and append the audit event; returns counts."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown export format {fmt!r}: use jsonl or fhir.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another file or add --force.")
    if out.parent and not out.parent.exists():
        raise UsageError(f"The folder {out.parent} does not exist.")
    secret = vault.meta("deid_secret") if deidentify else None
    if deidentify and not secret:
        raise UsageError("This vault has no de-identification secret (deid_secret); run `noteward check`.")
    counts = {"patients": 0, "notes": 0, "entities": 0}
    fd, tmp = tempfile.mkstemp(prefix=".noteward-export-", dir=str(out.parent or Path(".")))
    try:
        os.chmod(tmp, 0o600)
        items = []
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for prec, notes, n_ent in patient_records(vault, patient_ids, deidentify, mode, secret, progress):
                counts["patients"] += 1
                counts["notes"] += len(notes)
                counts["entities"] += n_ent
                if fmt == "jsonl":
                    fh.write(json.dumps({"kind": "patient", **prec}, ensure_ascii=False) + "\n")
                    for n in notes:
                        fh.write(json.dumps({"kind": "note", **n}, ensure_ascii=False) + "\n")
                else:
                    items.append((prec, notes))
            if fmt == "fhir":
                json.dump(_fhir_bundle(items), fh, ensure_ascii=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    action = "export_deidentified" if deidentify else "export_identified"
    events.record(vault, action, list(patient_ids), {**counts, "fhir": int(fmt == "fhir")})
    return counts
