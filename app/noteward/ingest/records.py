"""Parsed records, before they are written to a vault, and the import report.

Parsers turn files into these plain records and a list of problems; the importer writes
them in one transaction. Records keep the source system's identifiers (``source_id``);
Noteward's own ids are assigned when they are stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any


class RecordError(ValueError):
    """A record holds something the vault cannot store; the message names the field,
    never its value (values can be PHI)."""


_SURROGATE = re.compile(r"[\ud800-\udfff]")
DEFAULT_MAX_NOTE_BYTES = 10_000_000  # NOTEWARD_MAX_NOTE_MB's default


def has_lone_surrogate(text: str) -> bool:
    """True when ``text`` cannot be encoded as UTF-8 (JSON's ``\\ud800`` escapes give such)."""
    return not text.isascii() and _SURROGATE.search(text) is not None  # isascii is O(1)


def check_record(record: Any) -> None:
    """Every text field of a record is a ``str`` (or None where optional) that can be
    encoded as UTF-8: the last guard before a value is bound into an SQL statement, so a
    parser's oversight is reported as a bad record instead of failing the whole import."""
    for f in fields(record):
        if f.type not in ("str", "str | None"):
            continue
        value = getattr(record, f.name)
        if value is None:
            if f.type == "str":
                raise RecordError(f"{f.name} is missing")
            continue
        if not isinstance(value, str):
            raise RecordError(f"{f.name} is not text")
        if has_lone_surrogate(value):
            raise RecordError(f"{f.name} is not valid Unicode (it holds a lone surrogate)")


def too_big_reason(size: int, limit: int) -> str:
    """The report's reason for a note over the size limit (NOTEWARD_MAX_NOTE_MB)."""
    return (
        f"note is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit for one note; "
        "split it into smaller notes or raise NOTEWARD_MAX_NOTE_MB"
    )


@dataclass
class PatientRecord:
    source_id: str
    name: str = ""
    birth_date: str | None = None
    sex: str | None = None
    deceased: bool = False
    deceased_date: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_record(self)


@dataclass
class EncounterRecord:
    source_id: str
    patient_source_id: str
    date: str | None = None
    end_date: str | None = None
    type: str | None = None
    origin: str = ""  # "file:line" or "file:resource", for error reports (no PHI)

    def __post_init__(self) -> None:
        check_record(self)


@dataclass
class NoteRecord:
    patient_source_id: str
    text: str
    origin: str  # file name and line or resource, for error reports (no PHI)
    date: str | None = None
    type: str | None = None
    author: str | None = None
    source: str = "text"
    source_id: str | None = None
    encounter_source_id: str | None = None
    patient_name: str | None = None  # when the note itself names its patient (text, CSV)

    def __post_init__(self) -> None:
        check_record(self)


@dataclass
class FactRecord:
    kind: str  # condition, medication, allergy, procedure, immunization
    patient_source_id: str
    display: str
    source_id: str | None = None
    code: str | None = None
    status: str | None = None
    date: str | None = None
    end_date: str | None = None
    encounter_source_id: str | None = None
    origin: str = ""  # "file:line" or "file:resource", for error reports (no PHI)

    def __post_init__(self) -> None:
        check_record(self)


@dataclass
class ImportProblem:
    file: str
    reason: str
    line: int | None = None
    resource: str | None = None  # resource type and position, e.g. "DocumentReference #12"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "resource": self.resource, "reason": self.reason}


def problem_at(origin: str, reason: str) -> ImportProblem:
    """The problem for a record found at ``origin`` ("file:line" or "file:resource")."""
    file, _, where = origin.rpartition(":")
    if not file:
        return ImportProblem(origin, reason)
    if where.isdigit():
        return ImportProblem(file, reason, int(where))
    return ImportProblem(file, reason, None, where)


@dataclass
class ParsedBatch:
    patients: list[PatientRecord] = field(default_factory=list)
    encounters: list[EncounterRecord] = field(default_factory=list)
    notes: list[NoteRecord] = field(default_factory=list)
    facts: list[FactRecord] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    repaired_encoding: int = 0
    files: int = 0

    def extend(self, other: ParsedBatch) -> None:
        self.patients += other.patients
        self.encounters += other.encounters
        self.notes += other.notes
        self.facts += other.facts
        self.problems += other.problems
        for k, v in other.ignored.items():
            self.ignored[k] = self.ignored.get(k, 0) + v
        self.repaired_encoding += other.repaired_encoding
        self.files += other.files


KINDS = ("patients", "encounters", "notes", "facts")


@dataclass
class ImportReport:
    """What an import did: counts per kind, problems, and whether it committed."""

    import_id: str
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: {"imported": 0, "skipped": 0, "near_duplicates": 0} for k in KINDS}
    )
    problems: list[ImportProblem] = field(default_factory=list)
    empty_skipped: int = 0
    repaired_encoding: int = 0
    ignored_resources: dict[str, int] = field(default_factory=dict)
    files: int = 0
    committed: bool = False
    seconds: float = 0.0

    def bump(self, kind: str, what: str, n: int = 1) -> None:
        self.counts[kind][what] += n

    def to_json(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "committed": self.committed,
            "files": self.files,
            "counts": self.counts,
            "empty_notes_skipped": self.empty_skipped,
            "encoding_repaired": self.repaired_encoding,
            "ignored_resources": dict(sorted(self.ignored_resources.items())),
            "errors": [p.to_json() for p in self.problems],
            "seconds": round(self.seconds, 3),
        }
