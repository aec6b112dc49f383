"""Domain types shared by every layer: patients, notes, chunks, source spans, summaries.

Character offsets anywhere in Noteward are end-exclusive code-point offsets into
`Note.text` (Python string indices).
"""

from __future__ import annotations

from collections.abc import Mapping
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


# The sections the model writes under (the grounded-v1 prompt and its training targets).
SECTIONS = ("Problems", "Medications", "Allergies", "Recent findings", "Plan", "Other")
# The sections a summary is shown under, in order: the model's plus the composed ones (the
# one-line synopsis on top, resolved problems apart from active ones, stopped medications a
# note still lists, a short social line).
SUMMARY_SECTIONS = (
    "Patient",
    "Problems",
    "Resolved problems",
    "Medications",
    "Stopped medications",
    "Allergies",
    "Recent findings",
    "Plan",
    "Social",
    "Other",
)
# Where a sentence came from: the model wrote it, it was copied from a note, or it was
# composed from the record's structured facts (FHIR conditions, medications, allergies).
ORIGINS = ("model", "extract", "fact")
# How an unsupported sentence is marked in the text a clinician edits and approves. The mark
# never enters an approved summary; neither does the sentence, unless the clinician edits it.
UNSUPPORTED_MARK = "⚠ UNSUPPORTED, check or delete: "


def _spans(raw: Any) -> list[SourceSpan]:
    return [SourceSpan(str(s["note_id"]), int(s["start"]), int(s["end"])) for s in raw or []]


@dataclass(frozen=True)
class Conflict:
    """Another dated statement that disagrees with a sentence (both are shown, never resolved)."""

    text: str
    date: str | None = None  # ISO date of the disagreeing note or fact
    sources: list[SourceSpan] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "date": self.date, "sources": [s.to_json() for s in self.sources]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Conflict:
        return cls(str(d.get("text") or ""), d.get("date"), _spans(d.get("sources")))


@dataclass
class SummarySentence:
    """One summary sentence with its note spans, verdict, date and origin.

    ``date`` is the ISO date of the note or fact it states (the newest of its sources);
    ``origin`` is one of ``ORIGINS``; ``conflicts`` are the other statements it disagrees
    with. Summaries saved before these existed read back with None / [].
    """

    text: str
    section: str
    sources: list[SourceSpan] = field(default_factory=list)
    support: float = 0.0
    supported: bool = False
    date: str | None = None
    origin: str | None = None
    conflicts: list[Conflict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "section": self.section,
            "sources": [s.to_json() for s in self.sources],
            "support": round(self.support, 4),
            "supported": self.supported,
            "date": self.date,
            "origin": self.origin,
            "conflicts": [c.to_json() for c in self.conflicts],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SummarySentence:
        """A sentence from its JSON (fields missing from older summaries read as None)."""
        return cls(
            text=str(d.get("text") or ""),
            section=str(d.get("section") or "Other"),
            sources=_spans(d.get("sources")),
            support=float(d.get("support") or 0.0),
            supported=bool(d.get("supported")),
            date=d.get("date"),
            origin=d.get("origin"),
            conflicts=[Conflict.from_json(c) for c in d.get("conflicts") or []],
        )


@dataclass
class Summary:
    """A grounded summary: its sentences, what it covers, the model that wrote it, timings.

    What the summarizer returns and the summary pane shows. ``from_stored`` reads a saved
    summary, whichever version of Noteward wrote it.
    """

    patient: str | None
    sentences: list[SummarySentence]
    covers: dict[str, Any] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=lambda: {"id": "", "sha256": ""})
    timings: dict[str, float] = field(default_factory=dict)
    prompt_version: str = ""
    summary_id: str | None = None
    model_output: str = ""  # the raw model text (not shown; kept for evaluation)
    omitted: dict[str, int] = field(default_factory=dict)  # left out by the length cap, per section
    out_of_date: bool = False
    approved_text: str | None = None
    created_at: str | None = None
    approved_by: str | None = None  # the approver's user name (None: not recorded, or not approved)
    approved_at: str | None = None  # ISO 8601, UTC
    # The patient's approved summary when this newer machine summary is not approved: both
    # are kept and shown, the newer marked as not approved.
    earlier_approved: Summary | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON of `noteward summarize --json` (patient, model, sentences, timings)."""
        t = self.timings
        return {
            "patient": self.patient,
            "model": {"id": self.model.get("id", ""), "sha256": self.model.get("sha256", "")},
            "sentences": [s.to_json() for s in self.sentences],
            "timings": {
                "retrieval_ms": round(float(t.get("retrieval_ms", 0.0)), 1),
                "prompt_tokens": int(t.get("prompt_tokens", 0)),
                "ttft_ms": round(float(t.get("ttft_ms", 0.0)), 1),
                "generated_tokens": int(t.get("generated_tokens", 0)),
                "total_ms": round(float(t.get("total_ms", 0.0)), 1),
            },
        }

    def text(self, include_unsupported: bool = True) -> str:
        """Plain text under section headings (for display and ROUGE)."""
        out: list[str] = []
        for section in SUMMARY_SECTIONS:
            items = [
                s
                for s in self.sentences
                if s.section == section and (include_unsupported or s.supported)
            ]
            if items:
                out.append(f"{section}:")
                out.extend(f"- {s.text}" for s in items)
        return "\n".join(out)

    def approval_text(self) -> str:
        """The text a clinician is offered to edit and approve: every sentence under its
        section heading, unsupported ones prefixed with ``UNSUPPORTED_MARK`` (they are left
        out on approval unless the clinician edits them)."""
        return self.as_text(UNSUPPORTED_MARK) + "\n"

    def as_text(self, unsupported_mark: str) -> str:
        """Every sentence as a "- " line under its section heading, in the order shown, an
        unsupported one prefixed with ``unsupported_mark``."""
        out: list[str] = []
        for section in SUMMARY_SECTIONS:
            items = [s for s in self.sentences if s.section == section]
            if items:
                out.append(f"{section}:")
                out.extend(f"- {'' if s.supported else unsupported_mark}{s.text}" for s in items)
        return "\n".join(out)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Summary:
        """A summary from its JSON, a stored body, or the dict the app passes around."""
        model = d.get("model") or {}
        return cls(
            patient=d.get("patient") or d.get("patient_id"),
            sentences=[
                s if isinstance(s, SummarySentence) else SummarySentence.from_json(s)
                for s in d.get("sentences") or []
            ],
            covers=dict(d.get("covers") or {}),
            model={"id": str(model.get("id") or ""), "sha256": str(model.get("sha256") or "")},
            timings=dict(d.get("timings") or {}),
            prompt_version=str(d.get("prompt_version") or ""),
            summary_id=d.get("id") or d.get("summary_id"),
            out_of_date=bool(d.get("out_of_date")),
            approved_text=d.get("approved_text"),
            created_at=d.get("created_at"),
            approved_by=d.get("approved_by"),
            approved_at=d.get("approved_at"),
            earlier_approved=_earlier(d.get("earlier_approved")),
        )

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Summary:
        """A summary as ``latest_summary``/``load_summary`` return it (row + JSON body).

        The row's model id labels the summary even when its body predates the model key.
        """
        body = dict(stored.get("body") or {})
        body.setdefault("model", {"id": stored.get("model_id"), "sha256": stored.get("model_sha256")})
        out = cls.from_json(body)
        out.patient = out.patient or stored.get("patient_id")
        out.summary_id = stored.get("id")
        out.covers = dict(stored.get("covers") or out.covers)
        out.prompt_version = str(stored.get("prompt_version") or out.prompt_version)
        out.out_of_date = bool(stored.get("out_of_date"))
        out.approved_text = stored.get("approved_text")
        out.created_at = stored.get("created_at")
        out.approved_by = stored.get("approved_by")
        out.approved_at = stored.get("approved_at")
        out.earlier_approved = _earlier(stored.get("earlier_approved"))
        if stored.get("model_id"):
            out.model = {"id": str(stored["model_id"]), "sha256": str(stored.get("model_sha256") or "")}
        return out


def _earlier(value: Any) -> Summary | None:
    """The earlier approved summary carried by a newer one (a Summary or its stored dict)."""
    if value is None or isinstance(value, Summary):
        return value
    return Summary.from_stored(value)
