"""FHIR R4 importer: JSON Bundles and bulk-export NDJSON (as Synthea writes them).

Reads Patient, Encounter, DocumentReference (base64 ``text/plain`` attachments become
notes), Condition, MedicationRequest, AllergyIntolerance, Procedure and Immunization.
Other resource types are counted as ignored. A malformed resource is reported with its
file, line and resource position, never its content.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from noteward.ingest.cleaning import decode_text
from noteward.ingest.records import (
    EncounterRecord,
    FactRecord,
    ImportProblem,
    NoteRecord,
    ParsedBatch,
    PatientRecord,
)

FACT_KINDS = {
    "Condition": ("condition", "code", "subject"),
    "MedicationRequest": ("medication", "medicationCodeableConcept", "subject"),
    "AllergyIntolerance": ("allergy", "code", "patient"),
    "Procedure": ("procedure", "code", "subject"),
    "Immunization": ("immunization", "vaccineCode", "patient"),
}


class ResourceError(ValueError):
    """A resource is missing something Noteward needs (message says what)."""


def ref_id(ref: Any) -> str | None:
    """The id in a reference: ``Patient/abc``, ``urn:uuid:abc`` or a bare id."""
    if isinstance(ref, dict):
        ref = ref.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("urn:uuid:"):
        return ref[len("urn:uuid:"):]
    if "?" in ref:  # conditional reference (Practitioner?identifier=...): no id
        return None
    return ref.rsplit("/", 1)[-1]


def _concept_text(cc: Any) -> str | None:
    if not isinstance(cc, dict):
        return None
    if cc.get("text"):
        return str(cc["text"])
    for coding in cc.get("coding") or []:
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"])
    return None


def _concept_code(cc: Any) -> str | None:
    if isinstance(cc, dict):
        for coding in cc.get("coding") or []:
            if isinstance(coding, dict) and coding.get("code"):
                return f"{coding.get('system', '')}|{coding['code']}"
    return None


def _status(res: dict[str, Any]) -> str | None:
    cs = res.get("clinicalStatus")
    if isinstance(cs, dict):
        for coding in cs.get("coding") or []:
            if coding.get("code"):
                return str(coding["code"])
    return res.get("status")


def _name(res: dict[str, Any]) -> str:
    names = res.get("name") or []
    chosen = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not chosen:
        return ""
    if chosen.get("text"):
        return str(chosen["text"])
    return " ".join([*chosen.get("given", []), chosen.get("family", "")]).strip()


def parse_patient(res: dict[str, Any]) -> PatientRecord:
    if not res.get("id"):
        raise ResourceError("Patient has no id")
    identifiers = [
        {"type": ((i.get("type") or {}).get("text") or (i.get("system") or "")), "value": i.get("value")}
        for i in res.get("identifier") or []
        if i.get("value")
    ]
    all_names = [
        " ".join([*n.get("prefix", []), *n.get("given", []), n.get("family", "")]).strip()
        for n in res.get("name") or []
    ]
    details = {
        "names": [n for n in all_names if n],
        "identifiers": identifiers,
        "telecom": [t.get("value") for t in res.get("telecom") or [] if t.get("value")],
        "address": [
            {
                "line": a.get("line", []),
                "city": a.get("city"),
                "state": a.get("state"),
                "postalCode": a.get("postalCode"),
                "country": a.get("country"),
            }
            for a in res.get("address") or []
        ],
    }
    deceased_dt = res.get("deceasedDateTime")
    return PatientRecord(
        source_id=str(res["id"]),
        name=_name(res),
        birth_date=res.get("birthDate"),
        sex=res.get("gender"),
        deceased=bool(deceased_dt or res.get("deceasedBoolean")),
        deceased_date=deceased_dt,
        details=details,
    )


def parse_encounter(res: dict[str, Any]) -> EncounterRecord:
    pid = ref_id(res.get("subject"))
    if not res.get("id") or not pid:
        raise ResourceError("Encounter has no id or no subject")
    period = res.get("period") or {}
    types = res.get("type") or []
    return EncounterRecord(
        source_id=str(res["id"]),
        patient_source_id=pid,
        date=period.get("start"),
        end_date=period.get("end"),
        type=_concept_text(types[0]) if types else None,
    )


def parse_document(res: dict[str, Any], origin: str) -> tuple[NoteRecord | None, bool]:
    """A DocumentReference's text/plain attachment as a note; (note, encoding_repaired)."""
    pid = ref_id(res.get("subject"))
    if not pid:
        raise ResourceError("DocumentReference has no subject")
    attachment = None
    for content in res.get("content") or []:
        att = content.get("attachment") or {}
        if str(att.get("contentType", "")).startswith("text/plain") and "data" in att:
            attachment = att
            break
    if attachment is None:
        raise ResourceError("DocumentReference has no text/plain attachment with data")
    try:
        raw = base64.b64decode(attachment["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ResourceError("DocumentReference attachment is not valid base64") from None
    text, repaired = decode_text(raw)
    types = (res.get("type") or {}).get("coding") or []
    authors = res.get("author") or []
    enc = ((res.get("context") or {}).get("encounter") or [None])[0]
    period = (res.get("context") or {}).get("period") or {}
    return (
        NoteRecord(
            patient_source_id=pid,
            text=text,
            origin=origin,
            date=res.get("date") or period.get("start"),
            type=(types[0].get("display") if types else None) or _concept_text(res.get("type")),
            author=authors[0].get("display") if authors else None,
            source="fhir",
            source_id=res.get("id"),
            encounter_source_id=ref_id(enc) if enc else None,
        ),
        repaired,
    )


def parse_fact(res: dict[str, Any]) -> FactRecord:
    kind, concept_key, subject_key = FACT_KINDS[res["resourceType"]]
    pid = ref_id(res.get(subject_key))
    if not pid:
        raise ResourceError(f"{res['resourceType']} has no {subject_key}")
    concept = res.get(concept_key)
    display = _concept_text(concept)
    if not display:
        raise ResourceError(f"{res['resourceType']} has no {concept_key} text")
    date = (
        res.get("onsetDateTime")
        or res.get("authoredOn")
        or res.get("recordedDate")
        or res.get("occurrenceDateTime")
        or (res.get("performedPeriod") or {}).get("start")
        or res.get("performedDateTime")
    )
    end = res.get("abatementDateTime") or (res.get("performedPeriod") or {}).get("end")
    return FactRecord(
        kind=kind,
        patient_source_id=pid,
        display=display,
        source_id=res.get("id"),
        code=_concept_code(concept),
        status=_status(res),
        date=date,
        end_date=end,
        encounter_source_id=ref_id(res.get("encounter")),
    )


def add_resource(batch: ParsedBatch, res: Any, file: str, line: int | None, position: str) -> None:
    """Parse one resource into ``batch``; problems are recorded, never raised."""
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        batch.problems.append(ImportProblem(file, "not a FHIR resource (no resourceType)", line, position))
        return
    rtype = res["resourceType"]
    where = f"{rtype} {position}"
    try:
        if rtype == "Bundle":
            for i, entry in enumerate(res.get("entry") or [], start=1):
                add_resource(batch, (entry or {}).get("resource"), file, line, f"entry #{i}")
        elif rtype == "Patient":
            batch.patients.append(parse_patient(res))
        elif rtype == "Encounter":
            batch.encounters.append(parse_encounter(res))
        elif rtype == "DocumentReference":
            note, repaired = parse_document(res, f"{file}:{line or position}")
            if note is not None:
                batch.notes.append(note)
                batch.repaired_encoding += int(repaired)
        elif rtype in FACT_KINDS:
            batch.facts.append(parse_fact(res))
        else:
            batch.ignored[rtype] = batch.ignored.get(rtype, 0) + 1
    except ResourceError as exc:
        batch.problems.append(ImportProblem(file, str(exc), line, where))
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        batch.problems.append(ImportProblem(file, f"malformed {rtype}: unexpected structure ({type(exc).__name__})", line, where))


def _ndjson_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            yield n, raw.decode("utf-8", errors="replace")


def parse_fhir_file(path: Path) -> ParsedBatch:
    """Parse an NDJSON bulk-export file or a JSON Bundle / single resource."""
    batch = ParsedBatch(files=1)
    name = path.name
    if path.suffix.lower() == ".ndjson":
        for n, line in _ndjson_lines(path):
            if not line.strip():
                continue
            try:
                res = json.loads(line)
            except json.JSONDecodeError as exc:
                batch.problems.append(ImportProblem(name, f"invalid JSON: {exc.msg}", n))
                continue
            add_resource(batch, res, name, n, f"line {n}")
        return batch
    try:
        res = json.loads(path.read_bytes().decode("utf-8-sig", errors="replace"))
    except json.JSONDecodeError as exc:
        batch.problems.append(ImportProblem(name, f"invalid JSON: {exc.msg}", exc.lineno))
        return batch
    add_resource(batch, res, name, None, "#1")
    return batch
