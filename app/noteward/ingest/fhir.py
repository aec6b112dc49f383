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
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from noteward.ingest.cleaning import decode_bytes, decode_text, looks_binary
from noteward.ingest.records import (
    DEFAULT_MAX_NOTE_BYTES,
    EncounterRecord,
    FactRecord,
    ImportProblem,
    NoteRecord,
    ParsedBatch,
    PatientRecord,
    RecordError,
    has_lone_surrogate,
    too_big_reason,
)

FACT_KINDS = {
    "Condition": ("condition", "code", "subject"),
    "MedicationRequest": ("medication", "medicationCodeableConcept", "subject"),
    "AllergyIntolerance": ("allergy", "code", "patient"),
    "Procedure": ("procedure", "code", "subject"),
    "Immunization": ("immunization", "vaccineCode", "patient"),
}


class ResourceError(RecordError):
    """A resource is missing something Noteward needs or holds a value of the wrong type
    (the message names the element, never its value)."""


# FHIR R4 date and dateTime (an instant is a dateTime with seconds and a zone), as the
# specification's regular expressions give them, ASCII digits only.
_DATE = (
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
    r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
)
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
DATE_RE = re.compile(_DATE)
DATETIME_RE = re.compile(_DATE + "(" + _TIME + ")?")
# A Bundle inside a Bundle inside ... is legal but never this deep in an export.
MAX_BUNDLE_DEPTH = 8


def _obj(value: Any, where: str) -> dict[str, Any]:
    """A JSON object element (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ResourceError(f"{where} is not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    """A repeating element (absent: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ResourceError(f"{where} is not a list")
    return value


def _objs(value: Any, where: str) -> list[dict[str, Any]]:
    return [_obj(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where))]


def _str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResourceError(f"{where} is not a string")
    if has_lone_surrogate(value):
        raise ResourceError(f"{where} is not valid Unicode (it holds a lone surrogate)")
    return value


def _strs(value: Any, where: str) -> list[str]:
    return [s for i, v in enumerate(_list(value, where)) if (s := _str(v, f"{where}[{i}]")) is not None]


def _date(value: Any, where: str, *, with_time: bool = True) -> str | None:
    """A FHIR date (``with_time`` False) or dateTime; anything else is an error."""
    s = _str(value, where)
    if s is None:
        return None
    if not (DATETIME_RE if with_time else DATE_RE).fullmatch(s):
        raise ResourceError(f"{where} is not a FHIR {'dateTime' if with_time else 'date'}")
    return s


def _id(res: dict[str, Any], required: bool = True) -> str | None:
    rid = _str(res.get("id"), f"{res['resourceType']}.id")
    if required and not rid:
        raise ResourceError(f"{res['resourceType']} has no id")
    return rid or None


def read_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    """The resources of one trusted NDJSON export (the shared corpora that training and
    evaluation read; nothing to report, so no repair): none when the file is absent."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def subject_id(res: dict[str, Any]) -> str:
    """The id of the patient a resource is about (``subject`` or ``patient``), or ""."""
    return ref_id(res.get("subject") or res.get("patient")) or ""


def concept_display(concept: dict[str, Any] | None) -> str:
    """A CodeableConcept's text, else its first coding's display, else ""."""
    if not concept:
        return ""
    return str(concept.get("text") or next((c.get("display") for c in concept.get("coding", [])), "") or "")


def ref_id(ref: Any) -> str | None:
    """The id in a reference: ``Patient/abc``, ``urn:uuid:abc`` or a bare id."""
    if isinstance(ref, dict):
        ref = ref.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("urn:uuid:"):
        return ref[len("urn:uuid:"):] or None
    if "?" in ref:  # conditional reference (Practitioner?identifier=...): no id
        return None
    return ref.rsplit("/", 1)[-1] or None


def _concept_text(cc: Any, where: str) -> str | None:
    if cc is None:
        return None
    cc = _obj(cc, where)
    text = _str(cc.get("text"), f"{where}.text")
    if text:
        return text
    for i, coding in enumerate(_objs(cc.get("coding"), f"{where}.coding")):
        display = _str(coding.get("display"), f"{where}.coding[{i}].display")
        if display:
            return display
    return None


def _concept_code(cc: Any, where: str) -> str | None:
    if cc is None:
        return None
    for i, coding in enumerate(_objs(_obj(cc, where).get("coding"), f"{where}.coding")):
        code = _str(coding.get("code"), f"{where}.coding[{i}].code")
        if code:
            return f"{_str(coding.get('system'), f'{where}.coding[{i}].system') or ''}|{code}"
    return None


def _status(res: dict[str, Any]) -> str | None:
    rtype = res["resourceType"]
    if res.get("clinicalStatus") is not None:
        cs = _obj(res["clinicalStatus"], f"{rtype}.clinicalStatus")
        for i, coding in enumerate(_objs(cs.get("coding"), f"{rtype}.clinicalStatus.coding")):
            code = _str(coding.get("code"), f"{rtype}.clinicalStatus.coding[{i}].code")
            if code:
                return code
    return _str(res.get("status"), f"{rtype}.status")


def _human_names(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Patient.name, every element checked: (use, text, prefix, given, family) per name."""
    out = []
    for i, n in enumerate(_objs(res.get("name"), "Patient.name")):
        w = f"Patient.name[{i}]"
        out.append({
            "use": _str(n.get("use"), f"{w}.use"),
            "text": _str(n.get("text"), f"{w}.text"),
            "prefix": _strs(n.get("prefix"), f"{w}.prefix"),
            "given": _strs(n.get("given"), f"{w}.given"),
            "family": _str(n.get("family"), f"{w}.family") or "",
        })
    return out


def _name(names: list[dict[str, Any]]) -> str:
    chosen = next((n for n in names if n["use"] == "official"), names[0] if names else None)
    if not chosen:
        return ""
    if chosen["text"]:
        return str(chosen["text"])
    return " ".join([*chosen["given"], chosen["family"]]).strip()


def parse_patient(res: dict[str, Any]) -> PatientRecord:
    rid = _id(res)
    assert rid is not None
    names = _human_names(res)
    identifiers = []
    for i, ident in enumerate(_objs(res.get("identifier"), "Patient.identifier")):
        w = f"Patient.identifier[{i}]"
        value = _str(ident.get("value"), f"{w}.value")
        if value:
            kind = _str(_obj(ident.get("type"), f"{w}.type").get("text"), f"{w}.type.text")
            identifiers.append({"type": kind or _str(ident.get("system"), f"{w}.system") or "", "value": value})
    all_names = [" ".join([*n["prefix"], *n["given"], n["family"]]).strip() for n in names]
    telecom = [
        v for i, t in enumerate(_objs(res.get("telecom"), "Patient.telecom"))
        if (v := _str(t.get("value"), f"Patient.telecom[{i}].value"))
    ]
    address = []
    for i, a in enumerate(_objs(res.get("address"), "Patient.address")):
        w = f"Patient.address[{i}]"
        address.append({
            "line": _strs(a.get("line"), f"{w}.line"),
            **{k: _str(a.get(k), f"{w}.{k}") for k in ("city", "state", "postalCode", "country")},
        })
    deceased_dt = _date(res.get("deceasedDateTime"), "Patient.deceasedDateTime")
    deceased_bool = res.get("deceasedBoolean")
    if deceased_bool is not None and not isinstance(deceased_bool, bool):
        raise ResourceError("Patient.deceasedBoolean is not true or false")
    return PatientRecord(
        source_id=rid,
        name=_name(names),
        birth_date=_date(res.get("birthDate"), "Patient.birthDate", with_time=False),
        sex=_str(res.get("gender"), "Patient.gender"),
        deceased=bool(deceased_dt or deceased_bool),
        deceased_date=deceased_dt,
        details={"names": [n for n in all_names if n], "identifiers": identifiers, "telecom": telecom,
                 "address": address},
    )


def parse_encounter(res: dict[str, Any], origin: str = "") -> EncounterRecord:
    rid = _id(res, required=False)
    pid = ref_id(res.get("subject"))
    if not rid or not pid:
        raise ResourceError("Encounter has no id or no subject")
    period = _obj(res.get("period"), "Encounter.period")
    types = _list(res.get("type"), "Encounter.type")
    return EncounterRecord(
        source_id=rid,
        patient_source_id=pid,
        date=_date(period.get("start"), "Encounter.period.start"),
        end_date=_date(period.get("end"), "Encounter.period.end"),
        type=_concept_text(types[0], "Encounter.type[0]") if types else None,
        origin=origin,
    )


def parse_document(res: dict[str, Any], origin: str, max_bytes: int) -> tuple[NoteRecord | None, bool]:
    """A DocumentReference's text/plain attachment as a note; (note, encoding_repaired).

    Notes over ``max_bytes`` are refused before their attachment is decoded."""
    rid = _id(res, required=False)
    pid = ref_id(res.get("subject"))
    if not pid:
        raise ResourceError("DocumentReference has no subject")
    attachment = None
    for i, content in enumerate(_objs(res.get("content"), "DocumentReference.content")):
        att = _obj(content.get("attachment"), f"DocumentReference.content[{i}].attachment")
        ctype = _str(att.get("contentType"), f"DocumentReference.content[{i}].attachment.contentType") or ""
        if ctype.startswith("text/plain") and "data" in att:
            attachment = att
            break
    if attachment is None:
        raise ResourceError("DocumentReference has no text/plain attachment with data")
    data = _str(attachment["data"], "DocumentReference attachment data") or ""
    if len(data) // 4 * 3 > max_bytes + 3:
        raise ResourceError(too_big_reason(len(data) // 4 * 3, max_bytes))
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ResourceError("DocumentReference attachment is not valid base64") from None
    if len(raw) > max_bytes:
        raise ResourceError(too_big_reason(len(raw), max_bytes))
    if looks_binary(raw):
        raise ResourceError("DocumentReference attachment is binary, not text")
    text, repaired = decode_text(raw)
    dtype = res.get("type")
    type_codings = _objs(_obj(dtype, "DocumentReference.type").get("coding"), "DocumentReference.type.coding")
    authors = _objs(res.get("author"), "DocumentReference.author")
    context = _obj(res.get("context"), "DocumentReference.context")
    encounters = _list(context.get("encounter"), "DocumentReference.context.encounter")
    period = _obj(context.get("period"), "DocumentReference.context.period")
    date = _date(res.get("date"), "DocumentReference.date") or _date(
        period.get("start"), "DocumentReference.context.period.start")
    first_display = _str(type_codings[0].get("display"), "DocumentReference.type.coding[0].display") \
        if type_codings else None
    return (
        NoteRecord(
            patient_source_id=pid,
            text=text,
            origin=origin,
            date=date,
            type=first_display or _concept_text(dtype, "DocumentReference.type"),
            author=_str(authors[0].get("display"), "DocumentReference.author[0].display") if authors else None,
            source="fhir",
            source_id=rid,
            encounter_source_id=ref_id(encounters[0]) if encounters else None,
        ),
        repaired,
    )


def parse_fact(res: dict[str, Any], origin: str = "") -> FactRecord:
    rtype = res["resourceType"]
    kind, concept_key, subject_key = FACT_KINDS[rtype]
    pid = ref_id(res.get(subject_key))
    if not pid:
        raise ResourceError(f"{rtype} has no {subject_key}")
    concept = res.get(concept_key)
    display = _concept_text(concept, f"{rtype}.{concept_key}")
    if not display:
        raise ResourceError(f"{rtype} has no {concept_key} text")
    performed = _obj(res.get("performedPeriod"), f"{rtype}.performedPeriod")
    starts = [(res.get(k), f"{rtype}.{k}") for k in
              ("onsetDateTime", "authoredOn", "recordedDate", "occurrenceDateTime")]
    starts += [(performed.get("start"), f"{rtype}.performedPeriod.start"),
               (res.get("performedDateTime"), f"{rtype}.performedDateTime")]
    dates = [_date(v, w) for v, w in starts]
    ends = [_date(res.get("abatementDateTime"), f"{rtype}.abatementDateTime"),
            _date(performed.get("end"), f"{rtype}.performedPeriod.end")]
    return FactRecord(
        kind=kind,
        patient_source_id=pid,
        display=display,
        source_id=_id(res, required=False),
        code=_concept_code(concept, f"{rtype}.{concept_key}"),
        status=_status(res),
        date=next((d for d in dates if d), None),
        end_date=next((d for d in ends if d), None),
        encounter_source_id=ref_id(res.get("encounter")),
        origin=origin,
    )


def add_resource(batch: ParsedBatch, res: Any, file: str, line: int | None, position: str,
                 max_bytes: int = DEFAULT_MAX_NOTE_BYTES, depth: int = 0) -> None:
    """Parse one resource into ``batch``; problems are recorded, never raised."""
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        batch.problems.append(ImportProblem(file, "not a FHIR resource (no resourceType)", line, position))
        return
    rtype = res["resourceType"]
    where = f"{rtype} {position}"
    origin = f"{file}:{line}" if line else f"{file}:{where}"
    try:
        if rtype == "Bundle":
            if depth >= MAX_BUNDLE_DEPTH:
                raise ResourceError(f"Bundle nested more than {MAX_BUNDLE_DEPTH} deep")
            for i, entry in enumerate(_list(res.get("entry"), "Bundle.entry"), start=1):
                if not isinstance(entry, dict):
                    batch.problems.append(ImportProblem(file, "Bundle entry is not an object", line, f"entry #{i}"))
                    continue
                add_resource(batch, entry.get("resource"), file, line, f"entry #{i}", max_bytes, depth + 1)
        elif rtype == "Patient":
            batch.patients.append(parse_patient(res))
        elif rtype == "Encounter":
            batch.encounters.append(parse_encounter(res, origin))
        elif rtype == "DocumentReference":
            note, repaired = parse_document(res, origin, max_bytes)
            if note is not None:
                batch.notes.append(note)
                batch.repaired_encoding += int(repaired)
        elif rtype in FACT_KINDS:
            batch.facts.append(parse_fact(res, origin))
        else:
            batch.ignored[rtype] = batch.ignored.get(rtype, 0) + 1
    except RecordError as exc:
        batch.problems.append(ImportProblem(file, str(exc), line, where))
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        batch.problems.append(ImportProblem(file, f"malformed {rtype}: unexpected structure ({type(exc).__name__})", line, where))


class BadJSON(ValueError):
    """Text that is not JSON; ``lineno`` where the parser stopped, when it knows."""

    def __init__(self, reason: str, lineno: int | None = None) -> None:
        super().__init__(reason)
        self.lineno = lineno


def _loads(text: str) -> Any:
    """``json.loads`` whose every failure is a :class:`BadJSON` with a message that quotes
    no input: too deep nesting and over-long integers included."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadJSON(f"invalid JSON: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise BadJSON("invalid JSON: nested too deeply") from None
    except ValueError:  # an integer of more than 4300 digits
        raise BadJSON("invalid JSON: a number is too long") from None


def parse_fhir_file(path: Path, max_bytes: int = DEFAULT_MAX_NOTE_BYTES) -> ParsedBatch:
    """Parse an NDJSON bulk-export file or a JSON Bundle / single resource.

    Text that is not UTF-8 is read as Windows-1252 and counted as repaired (per NDJSON
    line, per JSON file). A line that is not JSON is reported and the next one read."""
    batch = ParsedBatch(files=1)
    name = path.name
    if path.suffix.lower() == ".ndjson":
        with path.open("rb") as fh:
            for n, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                line, repaired = decode_bytes(raw)
                try:
                    res = _loads(line)
                except BadJSON as exc:
                    batch.problems.append(ImportProblem(name, str(exc), n))
                    continue
                batch.repaired_encoding += int(repaired)
                add_resource(batch, res, name, n, f"line {n}", max_bytes)
        return batch
    text, repaired = decode_bytes(path.read_bytes())
    try:
        res = _loads(text)
    except BadJSON as exc:
        batch.problems.append(ImportProblem(name, str(exc), exc.lineno))
        return batch
    batch.repaired_encoding += int(repaired)
    add_resource(batch, res, name, None, "#1", max_bytes)
    return batch
