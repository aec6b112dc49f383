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
from typing import Any

from noteward.ingest.cleaning import decode_text, looks_binary
from noteward.ingest.records import ImportProblem, NoteRecord, ParsedBatch, too_big_reason

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
        batch.problems.append(ImportProblem(path.name, too_big_reason(size, max_bytes)))
        return batch
    raw = path.read_bytes()
    if looks_binary(raw):
        batch.problems.append(ImportProblem(path.name, _binary_reason(raw)))
        return batch
    text, repaired = decode_text(raw)
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
    unmapped fields are looked for under common column names.

    The file is read strictly: a row with more fields than the header, a quote that is
    never closed or a stray quote is reported with the line the row starts on, and the
    rows around it are still imported."""
    batch = ParsedBatch(files=1)
    size = path.stat().st_size
    if size > max_bytes * 20:
        batch.problems.append(ImportProblem(path.name, too_big_reason(size, max_bytes * 20)))
        return batch
    text, repaired = decode_text(path.read_bytes())
    batch.repaired_encoding += int(repaired)
    # The csv module refuses fields over 128 KB by default; a note may be max_bytes long.
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, max_bytes + 1))
    try:
        _csv_rows(path.name, csv.reader(io.StringIO(text, newline=""), strict=True), mapping, max_bytes, batch)
    finally:
        csv.field_size_limit(old_limit)
    return batch


def _csv_problem(exc: csv.Error) -> str:
    """A csv.Error in words (its own message is terse; neither quotes the data)."""
    msg = str(exc)
    if "end of data" in msg:
        return "a quoted field is never closed (unterminated quote): the rest of the file was not read"
    if "expected after" in msg:
        return "stray quote: a quote inside a quoted field must be doubled (\"\")"
    if "field limit" in msg:
        return "a field is over the size limit for one note"
    return "malformed CSV row"


def _csv_rows(name: str, rows: Any, mapping: dict[str, str], max_bytes: int, batch: ParsedBatch) -> None:
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        batch.problems.append(ImportProblem(name, "empty CSV file: the first line must name the columns", 1))
        return
    except csv.Error as exc:
        batch.problems.append(ImportProblem(name, f"header: {_csv_problem(exc)}", 1))
        return
    lower = {h.lower(): h for h in header}
    cols: dict[str, str] = {}
    for field, candidates in CSV_DEFAULTS.items():
        if field in mapping:
            if mapping[field] not in header:
                batch.problems.append(ImportProblem(name, f"column '{mapping[field]}' (for {field}) is not in the header", 1))
                return
            cols[field] = mapping[field]
        else:
            found = next((lower[c] for c in candidates if c in lower), None)
            if found:
                cols[field] = found
    for required in ("text",):
        if required not in cols:
            batch.problems.append(
                ImportProblem(name, f"no '{required}' column: name it with --map {required}=COLUMN", 1)
            )
            return
    if "patient_id" not in cols and "patient_name" not in cols:
        batch.problems.append(ImportProblem(name, "no patient column: name it with --map patient_id=COLUMN", 1))
        return
    n = 0
    while True:
        line = rows.line_num + 1  # where the next record starts
        try:
            values = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            n += 1
            batch.problems.append(ImportProblem(name, _csv_problem(exc), line, f"record {n}"))
            continue
        if not values:  # a blank line is no record
            continue
        n += 1
        if len(values) > len(header):
            batch.problems.append(ImportProblem(
                name, f"row has {len(values)} fields, the header has {len(header)}: quote fields that hold commas",
                line, f"record {n}"))
            continue
        row = dict(zip(header, values + [""] * (len(header) - len(values)), strict=True))
        pid = row.get(cols.get("patient_id", ""), "").strip() or row.get(cols.get("patient_name", ""), "").strip()
        if not pid:
            batch.problems.append(ImportProblem(name, "row has no patient", line, f"record {n}"))
            continue
        if len(row.get(cols["text"], "")) > max_bytes:
            batch.problems.append(ImportProblem(name, too_big_reason(len(row[cols["text"]]), max_bytes), line, f"record {n}"))
            continue
        batch.notes.append(
            NoteRecord(
                patient_source_id=pid,
                patient_name=row.get(cols.get("patient_name", ""), "").strip() or pid,
                text=row.get(cols["text"], ""),
                origin=f"{name}:{line}",
                date=row.get(cols.get("date", ""), "").strip() or None,
                type=row.get(cols.get("type", ""), "").strip() or "Note",
                author=row.get(cols.get("author", ""), "").strip() or None,
                source="csv",
                source_id=row.get(cols.get("note_id", ""), "").strip() or f"{name}#{n}",
            )
        )


def _binary_reason(raw: bytes) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text is not supported: save the file as UTF-8; skipped"
    return "binary file, not text: skipped"
