"""Parsed records, before they are written to a vault, and the import report.

Parsers turn files into these plain records and a list of problems; the importer writes
them in one transaction. Records keep the source system's identifiers (``source_id``);
Noteward's own ids are assigned when they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PatientRecord:
    source_id: str
    name: str = ""
    birth_date: str | None = None
    sex: str | None = None
    deceased: bool = False
    deceased_date: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EncounterRecord:
    source_id: str
    patient_source_id: str
    date: str | None = None
    end_date: str | None = None
    type: str | None = None


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


@dataclass
class ImportProblem:
    file: str
    reason: str
    line: int | None = None
    resource: str | None = None  # resource type and position, e.g. "DocumentReference #12"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "resource": self.resource, "reason": self.reason}


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
