"""Plain-text notes: one note per file; the patient from a header line or the folder.

An optional header block at the top of a file (``Key: value`` lines, then a blank line)
gives the note's metadata; recognised keys are Patient, Patient-ID (or MRN), Date, Type
and Author. Without a Patient line the folder name names the patient. The header is not
part of the stored note text.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from noteward.ingest.cleaning import decode_text
from noteward.ingest.records import ImportProblem, NoteRecord, ParsedBatch

HEADER_KEYS = {
    "patient": "patient_name",
    "patient name": "patient_name",
    "name": "patient_name",
    "patient-id": "patient_id",
    "patient id": "patient_id",
    "mrn": "patient_id",
    "date": "date",
    "note date": "date",
    "type": "type",
    "note type": "type",
    "author": "author",
}
_HEADER = re.compile(r"^([A-Za-z][A-Za-z \-]{0,20}):[ \t]*(.*)$")
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def split_header(text: str) -> tuple[dict[str, str], str]:
    """Header fields and the note body (the text after the header block)."""
    fields: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _HEADER.match(lines[i])
        if not m or m.group(1).strip().lower() not in HEADER_KEYS:
            break
        fields[HEADER_KEYS[m.group(1).strip().lower()]] = m.group(2).strip()
        i += 1
    if not fields or (i < len(lines) and lines[i].strip()):
        return {}, text  # no header block: the whole file is the note
    return fields, "\n".join(lines[i + 1:])


def parse_text_file(path: Path, root: Path, max_bytes: int) -> ParsedBatch:
    batch = ParsedBatch(files=1)
    size = path.stat().st_size
    if size > max_bytes:
        batch.problems.append(ImportProblem(path.name, _too_big(size, max_bytes)))
        return batch
    text, repaired = decode_text(path.read_bytes())
    batch.repaired_encoding += int(repaired)
    fields, body = split_header(text)
    folder = path.parent.name if path.parent != root or root.is_dir() else ""
    name = fields.get("patient_name") or folder
    pid = fields.get("patient_id") or name
    if not pid:
        batch.problems.append(
            ImportProblem(path.name, "no patient: add a 'Patient:' header line or put the file in a folder named after the patient")
        )
        return batch
    m = _DATE_IN_NAME.search(path.name)
    batch.notes.append(
        NoteRecord(
            patient_source_id=pid,
            patient_name=name or pid,
            text=body,
            origin=path.name,
            date=fields.get("date") or (m.group(1) if m else None),
            type=fields.get("type") or "Note",
            author=fields.get("author"),
            source="text",
            source_id=str(path.relative_to(root)) if root.is_dir() else path.name,
        )
    )
    return batch


CSV_DEFAULTS = {
    "patient_id": ("patient_id", "patient", "mrn", "subject_id", "pid"),
    "patient_name": ("patient_name", "name"),
    "text": ("text", "note", "note_text", "body", "content"),
    "date": ("date", "note_date", "charttime", "created"),
    "type": ("type", "note_type", "category"),
    "author": ("author", "provider", "clinician"),
    "note_id": ("note_id", "id", "row_id"),
}


def parse_csv_file(path: Path, mapping: dict[str, str], max_bytes: int) -> ParsedBatch:
    """One note per row. ``mapping`` maps our fields (patient_id, text, ...) to columns;
    unmapped fields are looked for under common column names."""
    batch = ParsedBatch(files=1)
    size = path.stat().st_size
    if size > max_bytes * 20:
        batch.problems.append(ImportProblem(path.name, _too_big(size, max_bytes * 20)))
        return batch
    text, repaired = decode_text(path.read_bytes())
    batch.repaired_encoding += int(repaired)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    lower = {h.lower(): h for h in header}
    cols: dict[str, str] = {}
    for field, candidates in CSV_DEFAULTS.items():
        if field in mapping:
            if mapping[field] not in header:
                batch.problems.append(ImportProblem(path.name, f"column '{mapping[field]}' (for {field}) is not in the header", 1))
                return batch
            cols[field] = mapping[field]
        else:
            found = next((lower[c] for c in candidates if c in lower), None)
            if found:
                cols[field] = found
    for required in ("text",):
        if required not in cols:
            batch.problems.append(
                ImportProblem(path.name, f"no '{required}' column: name it with --map {required}=COLUMN", 1)
            )
            return batch
    if "patient_id" not in cols and "patient_name" not in cols:
        batch.problems.append(ImportProblem(path.name, "no patient column: name it with --map patient_id=COLUMN", 1))
        return batch
    for n, row in enumerate(reader, start=1):
        line = reader.line_num
        row = {(k or "").strip(): (v or "") for k, v in row.items()}
        pid = row.get(cols.get("patient_id", ""), "").strip() or row.get(cols.get("patient_name", ""), "").strip()
        if not pid:
            batch.problems.append(ImportProblem(path.name, "row has no patient", line, f"record {n}"))
            continue
        if len(row.get(cols["text"], "")) > max_bytes:
            batch.problems.append(ImportProblem(path.name, _too_big(len(row[cols["text"]]), max_bytes), line, f"record {n}"))
            continue
        batch.notes.append(
            NoteRecord(
                patient_source_id=pid,
                patient_name=row.get(cols.get("patient_name", ""), "").strip() or pid,
                text=row.get(cols["text"], ""),
                origin=f"{path.name}:{line}",
                date=row.get(cols.get("date", ""), "").strip() or None,
                type=row.get(cols.get("type", ""), "").strip() or "Note",
                author=row.get(cols.get("author", ""), "").strip() or None,
                source="csv",
                source_id=row.get(cols.get("note_id", ""), "").strip() or f"{path.name}#{n}",
            )
        )
    return batch


def _too_big(size: int, limit: int) -> str:
    return (
        f"note is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit for one note; "
        "split it into smaller notes or raise NOTEWARD_MAX_NOTE_MB"
    )
