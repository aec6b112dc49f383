"""Exports of a vault's notes: de-identified (research, training) or identified (audited),
and of an approved summary as a FHIR R4 document (identified, admin only, audited).

A de-identified export carries only Noteward's opaque ids: no names, source ids, authors
or encounter references; note text goes through the Deidentifier with the patient's own
record as extra PHI; dates are shifted by the patient's offset (surrogate mode) or cut to
the year (tag mode). Every export appends an audit event with ids and counts only.
"""

from __future__ import annotations

import base64
import difflib
import functools
import hashlib
import html
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.errors import UsageError
from noteward.core.models import SUMMARY_SECTIONS, Summary, SummarySentence
from noteward.deid.surrogates import Surrogates
from noteward.store import events, summaries

if TYPE_CHECKING:
    from noteward.store.vault import Vault

FORMATS = ("jsonl", "fhir")
ENGINE_NAME = "noteward-deid"
# The files whose content decides what the engine finds: their hash is the rules hash.
_RULE_FILES = ("patterns.yaml", "lexicons.yaml", "names.txt", "us_places.txt", "clinical_allow.txt", "drugs.txt",
               "ner_weights.json", "ner_weights.bin")


class ProvenanceError(UsageError):
    """A record meant for training lacks recall-point de-identification provenance."""


@functools.lru_cache(maxsize=1)
def rules_sha256() -> str:
    """sha256 over the de-identification rule files (resources/deid), in a fixed order."""
    from noteward.deid.rules import resources_dir

    h = hashlib.sha256()
    for name in _RULE_FILES:
        h.update(name.encode() + b"\0" + (resources_dir() / name).read_bytes() + b"\0")
    return h.hexdigest()


def provenance(point: str) -> dict[str, str]:
    """What de-identified a record: engine (with version), rules hash and operating point."""
    from noteward import __version__

    return {"engine": f"{ENGINE_NAME}/{__version__}", "rules_sha256": rules_sha256(), "mode": point}


def require_recall_provenance(record: Any) -> dict[str, Any]:
    """Return ``record`` if it carries recall-point de-identification provenance, else raise
    ProvenanceError. The fine-tuning pipeline calls this on every record it takes from a
    vault, so raw vault text (or text cleaned only for the on-screen view) is refused."""
    deid = record.get("deid") if isinstance(record, dict) else None
    ok = (
        isinstance(deid, dict)
        and str(deid.get("engine", "")).startswith(ENGINE_NAME + "/")
        and deid.get("mode") == "recall"
        and re.fullmatch(r"[0-9a-f]{64}", str(deid.get("rules_sha256", ""))) is not None
    )
    if not ok:
        raise ProvenanceError(
            "Refusing a training record without recall-mode de-identification provenance: vault text must go "
            "through `noteward export --deidentify` (or noteward.deid.export.training_text) first."
        )
    return record


def training_text(text: str, patient: Any = None) -> dict[str, Any]:
    """Vault text made fit for training: recall-point de-identification (tags) plus its
    provenance, as ``{"text", "deid"}``."""
    from noteward.deid.engine import deidentify_text

    return {"text": deidentify_text(text, mode="tag", patient=patient, point="recall"), "deid": provenance("recall")}


def read_training_export(path: str | Path) -> list[dict[str, Any]]:
    """Note records of a JSONL export for training, each checked by
    ``require_recall_provenance`` (an identified or older export is refused whole)."""
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = require_recall_provenance(json.loads(line))
            if rec.get("kind", "note") == "note":
                out.append(rec)
    return out
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

        deid = Deidentifier(point="recall")  # text that leaves the vault: the recall point
    prov = provenance("recall") if deidentify else None
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
                "deid": prov,
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
                    "deid": prov,
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


def _patient_resource(prec: dict[str, Any]) -> dict[str, Any]:
    """A FHIR Patient from a patient record of :func:`patient_records` (or its like)."""
    pid = _fhir_id(prec["patient"])
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "identifier": _nw_identifier(prec["patient"])}
    if prec.get("sex") in ("male", "female", "other", "unknown"):
        patient["gender"] = prec["sex"]
    if prec.get("birth_date"):
        patient["birthDate"] = prec["birth_date"]
    if prec.get("name"):
        patient["name"] = [{"text": prec["name"]}]
    return patient


def _fhir_instant(d: str) -> str:
    return d if "T" in d else f"{d[:10]}T00:00:00Z"


def _document_reference(n: dict[str, Any], pid: str) -> dict[str, Any]:
    """A FHIR DocumentReference for a note record (its text as a base64 attachment)."""
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
        doc["date"] = _fhir_instant(n["date"])
    return doc


def _fhir_bundle(items: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    """A FHIR R4 collection Bundle: one Patient and its DocumentReferences per patient.
    Resource ids are Noteward's ids with '-' for '_' (kept exactly in ``identifier``)."""
    entries = []
    for prec, notes in items:
        patient = _patient_resource(prec)
        pid = patient["id"]
        entries.append({"fullUrl": f"{_BASE}/Patient/{pid}", "resource": patient})
        for n in notes:
            doc = _document_reference(n, pid)
            entries.append({"fullUrl": f"{_BASE}/DocumentReference/{doc['id']}", "resource": doc})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _check_out(out: str | Path, overwrite: bool) -> Path:
    """The export's path, refused (nothing written) when it exists or its folder does not."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; choose another file or add --force.")
    if out.parent and not out.parent.exists():
        raise UsageError(f"The folder {out.parent} does not exist.")
    return out


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
    out = _check_out(out, overwrite)
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


# -- an approved summary as a FHIR R4 Composition -------------------------------------------

# LOINC 60591-5 "Patient summary Document" (the International Patient Summary's type)
COMPOSITION_TYPE = {"system": "http://loinc.org", "code": "60591-5", "display": "Patient summary Document"}
COMPOSITION_TITLE = "Patient summary"
UNSECTIONED = "Summary"  # the section of approved lines written above any heading
_XHTML = "http://www.w3.org/1999/xhtml"
_ITEM_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_SECTION_NAMES = {s.casefold(): s for s in SUMMARY_SECTIONS}


def approved_sections(text: str) -> list[tuple[str, list[str]]]:
    """The approved text as (section title, lines): a line naming a summary section (with or
    without a colon) or any other short line ending in a colon starts a section; lines above
    the first heading go under ``UNSECTIONED``. Sections left empty are dropped."""
    out: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        bare = line.rstrip(":").strip()
        if not _ITEM_RE.match(raw) and (bare.casefold() in _SECTION_NAMES or (line.endswith(":") and 0 < len(bare) <= 60)):
            out.append((_SECTION_NAMES.get(bare.casefold(), bare), []))
            continue
        if not out:
            out.append((UNSECTIONED, []))
        out[-1][1].append(line)
    return [(title, lines) for title, lines in out if lines]


def _key(line: str) -> str:
    return " ".join(_ITEM_RE.sub("", line).split()).casefold()


def _cited_notes(line: str, section: str, sentences: Sequence[SummarySentence]) -> list[str]:
    """The notes an approved line cites: those of the supported machine sentence it is
    (word for word, or lightly edited: 80% alike), preferring one of the same section. A
    line the clinician wrote cites nothing."""
    key = _key(line)
    supported = [s for s in sentences if s.supported and s.sources]
    pools = ([s for s in supported if s.section == section], supported)
    match: SummarySentence | None = None
    for pool in pools:
        match = next((s for s in pool if _key(s.text) == key), None)
        if match is not None:
            break
    if match is None:
        for pool in pools:
            scored = [(difflib.SequenceMatcher(None, key, _key(s.text)).ratio(), i) for i, s in enumerate(pool)]
            best = max(scored, default=(0.0, -1))
            if best[0] >= 0.8:
                match = pool[best[1]]
                break
    if match is None:
        return []
    return list(dict.fromkeys(src.note_id for src in match.sources))


def _narrative(lines: list[str]) -> str:
    """The section's lines as an XHTML div: bullets as a list, other lines as paragraphs."""
    parts: list[str] = []
    in_list = False
    for line in lines:
        item = _ITEM_RE.match(line)
        if item and not in_list:
            parts.append("<ul>")
        elif not item and in_list:
            parts.append("</ul>")
        in_list = bool(item)
        text = html.escape(_ITEM_RE.sub("", line) if item else line, quote=False)
        parts.append(f"<li>{text}</li>" if item else f"<p>{text}</p>")
    if in_list:
        parts.append("</ul>")
    return f'<div xmlns="{_XHTML}">' + "".join(parts) + "</div>"


def composition_bundle(vault: Vault, patient_id: str) -> tuple[dict[str, Any], dict[str, int], str]:
    """A FHIR R4 document Bundle for the patient's most recently approved summary:
    (bundle, counts, summary id). Refused (UsageError) when nothing is approved."""
    sid = summaries.latest_approved_id(vault, patient_id)
    stored = summaries.get(vault, sid) if sid else None
    if stored is None or not (stored.approved_text or "").strip():
        raise UsageError(
            f"Patient {patient_id} has no approved summary: approve one in the app (Summary > "
            "Edit and approve…) first; nothing was exported."
        )
    from dataclasses import asdict

    summary = Summary.from_stored(asdict(stored))
    p = vault.patient(patient_id)
    patient = _patient_resource(
        {"patient": p.id, "name": p.name, "sex": p.sex, "birth_date": p.birth_date}
    )
    pid = patient["id"]
    approved_at = stored.approved_at or stored.created_at
    author: dict[str, Any]
    resources: list[dict[str, Any]] = [patient]
    if stored.approved_by:
        digest = hashlib.sha256(stored.approved_by.encode("utf-8")).hexdigest()[:16]
        practitioner = {
            "resourceType": "Practitioner",
            "id": f"user-{digest}",
            "identifier": [{"system": "urn:noteward:user", "value": stored.approved_by}],
            "name": [{"text": stored.approved_by}],
        }
        resources.append(practitioner)
        author = {"reference": f"Practitioner/{practitioner['id']}", "display": stored.approved_by}
    else:
        author = {"display": "approver not recorded"}
    notes = {n.id: n for n in vault.notes(p.id)}
    sections: list[dict[str, Any]] = []
    cited: dict[str, None] = {}
    for title, lines in approved_sections(str(stored.approved_text)):
        refs = [nid for line in lines for nid in _cited_notes(line, title, summary.sentences) if nid in notes]
        refs = list(dict.fromkeys(refs))
        cited.update(dict.fromkeys(refs))
        section: dict[str, Any] = {
            "title": title,
            "text": {"status": "additional", "div": _narrative(lines)},
        }
        if refs:
            section["entry"] = [{"reference": f"DocumentReference/{_fhir_id(nid)}"} for nid in refs]
        sections.append(section)
    for nid in cited:
        n = notes[nid]
        doc = _document_reference(
            {"note": n.id, "date": n.date, "type": n.type, "text": n.text}, pid
        )
        if n.date and len(n.date) >= 10:
            doc["context"] = {"period": {"start": _fhir_instant(n.date)}}
        resources.append(doc)
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": _fhir_id(stored.id),
        "identifier": _nw_identifier(stored.id)[0],  # 0..1 in R4
        "status": "final",
        "type": {"coding": [COMPOSITION_TYPE], "text": COMPOSITION_TITLE},
        "subject": {"reference": f"Patient/{pid}"},
        "date": approved_at,
        "author": [author],
        "title": COMPOSITION_TITLE,
        "attester": [{"mode": "legal", "time": approved_at, **({"party": author} if "reference" in author else {})}],
        "section": sections,
    }
    entries = [{"fullUrl": f"{_BASE}/Composition/{composition['id']}", "resource": composition}]
    entries += [{"fullUrl": f"{_BASE}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources]
    bundle = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:noteward:document", "value": stored.id},
        "type": "document",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "entry": entries,
    }
    return bundle, {"sections": len(sections), "cited_notes": len(cited)}, stored.id


def write_composition(
    vault: Vault, patient_id: str, out: str | Path, *, overwrite: bool = False
) -> dict[str, int]:
    """Write the patient's approved summary as a FHIR R4 document Bundle (a Composition with
    one section per approved section, author = the approver, the cited notes as
    DocumentReferences, the Patient): identified data, so admin only (``Vault.require_admin``, exit 8),
    written atomically with mode 0600 and audited ("export_identified_composition", ids and
    counts only). Returns the counts (sections, cited_notes)."""
    vault.require_admin("export an approved summary (identified data)")
    out = _check_out(out, overwrite)
    bundle, counts, sid = composition_bundle(vault, patient_id)
    fd, tmp = tempfile.mkstemp(prefix=".noteward-export-", dir=str(out.parent or Path(".")))
    try:
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(bundle, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    events.record(vault, "export_identified_composition", [patient_id, sid], {**counts, "fhir": 1})
    return counts
