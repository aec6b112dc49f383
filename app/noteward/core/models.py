"""Domain types shared by every layer: patients, notes, chunks, source spans, summaries.

Character offsets anywhere in Noteward are end-exclusive code-point offsets into
`Note.text` (Python string indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Patient:
    id: str  # opaque Noteward id
    source_id: str | None  # the source system's identifier (FHIR Patient.id, CSV record)
    name: str
    birth_date: str | None = None  # ISO date
    sex: str | None = None
    deceased: bool = False
    deceased_date: str | None = None
    note_count: int = 0
    details: dict[str, Any] = field(default_factory=dict)  # extra demographics (address...)


@dataclass(frozen=True)
class Note:
    id: str
    patient_id: str
    text: str
    date: str | None = None  # ISO date or datetime
    type: str | None = None
    author: str | None = None
    source: str | None = None  # what it was imported from (importer kind)
    source_id: str | None = None
    encounter_id: str | None = None
    content_hash: str = ""
    near_duplicate_of: str | None = None


@dataclass(frozen=True)
class Chunk:
    id: int
    note_id: str
    start: int
    end: int
    text: str
    section: str | None = None


@dataclass(frozen=True)
class SourceSpan:
    note_id: str
    start: int
    end: int

    def to_json(self) -> dict[str, Any]:
        return {"note_id": self.note_id, "start": self.start, "end": self.end}


SECTIONS = ("Problems", "Medications", "Allergies", "Recent findings", "Plan", "Other")


@dataclass
class SummarySentence:
    text: str
    section: str
    sources: list[SourceSpan] = field(default_factory=list)
    support: float = 0.0
    supported: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "section": self.section,
            "sources": [s.to_json() for s in self.sources],
            "support": round(self.support, 4),
            "supported": self.supported,
        }
