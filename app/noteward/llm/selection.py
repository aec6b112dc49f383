"""Selection: source units, their ranking and the skeleton candidates (no model involved).

Every note is split into source units (sentences, list items, clauses) with offsets;
identical units repeated across visits collapse to their latest occurrence, which keeps its
note's date. Units are classified into summary sections (note headers refined by cue words),
ranked by idf-weighted clinical content and recency, and a *skeleton* is chosen per
section: the patient's active structured facts located verbatim in the notes, or the most
recent notes' own sections. The skeleton plus the next best units are what the model is
shown (``prompt_candidates``, ``fit_prompt_lines``, shared with fine-tuning); what the
clinician is shown is decided by ``noteward.llm.composition`` from the same selection.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from noteward.core.models import SECTIONS
from noteward.llm.grounding import (
    SourceIndex,
    SourceUnit,
    content_words,
    drugs_in,
    numbers_in,
    rules,
    split_units,
)
from noteward.llm.lexicon import Vocabulary
from noteward.settings import resources_dir


@dataclass(frozen=True)
class SourceNote:
    """A note as the summarizer sees it (vault notes, or one text file as note "input")."""

    id: str
    text: str
    date: str | None = None


def iso_date(value: str | None) -> str | None:
    """The ISO date (YYYY-MM-DD) of an ISO date or datetime, or None."""
    if not value or not re.match(r"\d{4}-\d{2}-\d{2}", value):
        return None
    return value[:10]


# An allergy statement belongs under Allergies whichever note section it was written in.
ALLERGY_RE = re.compile(
    r"\ballerg(?:y|ies|ic)\b|\bnkda\b|\bnka\b|\banaphyla", re.IGNORECASE
)


@functools.cache
def content_rules() -> dict[str, Any]:
    """What the composed summary shows and how (``resources/prompts/summary_content.json``)."""
    path = resources_dir() / "prompts" / "summary_content.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@functools.cache
def _social_res() -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in content_rules()["social_findings"]]


def is_social(text: str) -> bool:
    """True for a social or administrative finding (employment, education, stress, ...).

    Synthea records these as "(finding)"/"(situation)" conditions; they are not problems.
    """
    return any(p.search(text) for p in _social_res())


@dataclass
class Candidate:
    """A source unit with its section, rank score, recency and its note's date."""

    unit: SourceUnit
    section: str
    score: float
    recency: int  # index of the note in date order (higher = newer)
    date: str | None = None  # ISO date of the (latest) note it occurs in


_PRESENTING_RE = re.compile(
    r"\b(presenting|presents|presented|complains?|complaining)\b", re.IGNORECASE
)


def _skip_patterns() -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in rules()["skip_patterns"]]


def classify(text: str, header_section: str | None) -> str:
    """The summary section for a unit: its header's, refined by cue words.

    An allergy statement goes under Allergies whatever header it was written under (an
    allergy documented in a note's plan is still an allergy, never a plan item).
    """
    if ALLERGY_RE.search(text):
        return "Allergies"
    if _PRESENTING_RE.search(text) and header_section in (None, "Plan", "Problems"):
        return "Recent findings"
    stripped = text.rstrip(" .;").lower()
    for suffix, section in rules().get("suffix_sections", {}).items():
        if stripped.endswith(suffix):
            return str(section)
    if header_section:
        return header_section
    low = text.lower()
    best, best_n = "Other", 0
    for section, cues in rules()["keyword_sections"].items():
        n = sum(1 for c in cues if re.search(r"(?<![a-z])" + re.escape(c) + r"(?![a-z])", low))
        if n > best_n:
            best, best_n = section, n
    if drugs_in(text) and best in ("Other", "Problems"):
        best = "Medications"
    return best


@dataclass
class Selection:
    """What selection found: the unit index, the skeleton, the ranked extras, candidates."""

    index: SourceIndex
    skeleton: list[
        tuple[str, SourceUnit | None, str, int | None]
    ]  # (section, unit, text, unit idx)
    extra: list[int]  # further unit indexes for the prompt, best first
    candidates: list[Candidate] = field(default_factory=list)  # index.units[i] is candidates[i].unit
    note_dates: dict[str, str | None] = field(default_factory=dict)  # note id -> ISO date

    def unit_date(self, unit_idx: int) -> str | None:
        """The ISO date of the note a unit was (last) seen in."""
        return self.candidates[unit_idx].date


_Selection = Selection  # the name older callers used


def _facts_active(facts: Sequence[Mapping[str, Any]], kind: str) -> list[str]:
    out: list[str] = []
    for f in facts:
        if f.get("kind") != kind:
            continue
        status = str(f.get("status") or "").lower()
        if status in (
            "resolved",
            "inactive",
            "stopped",
            "completed",
            "entered-in-error",
            "cancelled",
            "refuted",
        ):
            continue
        if kind == "condition" and f.get("end_date"):
            continue
        disp = str(f.get("display") or "").strip()
        if kind == "condition" and is_social(disp):
            continue  # social and administrative findings are not problems
        if disp and disp.lower() not in (d.lower() for d in out):
            out.append(disp)
    return out


def select(
    notes: Sequence[SourceNote],
    facts: Sequence[Mapping[str, Any]] = (),
    *,
    unit_cache: dict[tuple[str, int], list[SourceUnit]] | None = None,
    caps: Mapping[str, int] | None = None,
    recent_since: str | None = None,
    vocabulary: Vocabulary | None = None,
    patient_sex: str | None = None,
) -> Selection:
    """Pick the skeleton and the ranked extra units from the notes (no model involved).

    ``recent_since`` (ISO date): findings from notes older than this stay out of the
    skeleton's Recent findings (they may still be shown to the model as extras).
    ``vocabulary`` and ``patient_sex`` go to the checker (:class:`SourceIndex`): the
    patient's own FHIR names and recorded sex.
    """
    caps = {
        "Problems": 10,
        "Medications": 10,
        "Allergies": 3,
        "Recent findings": 4,
        "Plan": 5,
        "Other": 3,
        **(caps or {}),
    }
    skips = _skip_patterns()
    ordered = sorted(enumerate(notes), key=lambda p: ((p[1].date or ""), p[0]))
    latest: dict[str, Candidate] = {}
    for recency, (_, note) in enumerate(ordered):
        key = (note.id, hash(note.text))
        units = unit_cache.get(key) if unit_cache is not None else None
        if units is None:
            units = split_units(note.id, note.text)
            if unit_cache is not None:
                unit_cache[key] = units
        for u in units:
            body = " ".join(u.text.split())
            if any(p.match(body) for p in skips):
                continue
            words = content_words(body)
            section = classify(body, u.section)
            if (len(words) < 2 or len(body.split()) < 2) and section not in (
                "Allergies",
                "Medications",
            ):
                continue  # lone names, dates, fragments
            if len(words) < 1:
                continue
            latest[body.lower()] = Candidate(u, section, 0.0, recency, iso_date(note.date))
    cands = sorted(latest.values(), key=lambda c: (c.recency, c.unit.ordinal))
    index = SourceIndex(
        {n.id: n.text for n in notes},
        [c.unit for c in cands],
        vocabulary=vocabulary,
        patient_sex=patient_sex,
    )
    n_notes = max(1, len(ordered))
    for c in cands:
        uniq = set(content_words(c.unit.text))
        info = math.fsum(index.idf(w) for w in uniq) / (1 + 0.15 * max(0, len(uniq) - 25))
        bonus = 1.0 + 0.5 * bool(numbers_in(c.unit.text)) + 0.5 * bool(drugs_in(c.unit.text))
        bonus *= 1.0 + 0.2 * (c.section != "Other")
        c.score = info * bonus * (0.5 + 0.5 * (c.recency + 1) / n_notes)

    skeleton: list[tuple[str, SourceUnit | None, str, int | None]] = []
    used_units: set[int] = set()
    seen_text: set[str] = set()

    def add(section: str, unit_idx: int | None, text: str, fact: bool = False) -> None:
        key = " ".join(text.lower().split())
        if key in seen_text or sum(1 for s in skeleton if s[0] == section) >= caps[section]:
            return
        if not fact and any(s[0] == section and similar_words(text, s[2]) >= 0.9 for s in skeleton):
            return  # restates (or is contained in) a sentence already chosen
        seen_text.add(key)
        unit = index.units[unit_idx] if unit_idx is not None else None
        if unit_idx is not None:
            used_units.add(unit_idx)
        skeleton.append((section, unit, text, unit_idx))

    unit_pos = {id(c.unit): i for i, c in enumerate(cands)}
    by_section: dict[str, list[int]] = {s: [] for s in SECTIONS}
    for i, c in enumerate(cands):
        by_section[c.section].append(i)
    max_recency = max((c.recency for c in cands), default=0)

    fact_kinds = {"Problems": "condition", "Medications": "medication", "Allergies": "allergy"}
    for section in SECTIONS:
        kind = fact_kinds.get(section)
        displays = _facts_active(facts, kind) if kind else []
        if displays:
            if section == "Problems":  # disorders before social findings
                displays.sort(
                    key=lambda d: 0 if "(disorder)" in d else 1 if "(finding)" not in d else 2
                )
            # structured facts are the record's own problem list: allow a longer list
            caps[section] = max(caps[section], 30 if section != "Allergies" else 8)
            for disp in displays:
                span = index.find_exact(disp)
                if span is None:
                    continue
                text = index.texts[span.note_id][span.start : span.end]
                add(section, None, text, fact=True)
            if any(s[0] == section for s in skeleton):
                continue
        members = by_section[section]
        if section == "Recent findings" and recent_since:
            members = [i for i in members if (cands[i].date or "") >= recent_since]
        if not members:
            continue
        has_headers = any(cands[i].unit.section for i in members)
        if has_headers and section in ("Medications", "Allergies", "Recent findings", "Plan"):
            # the most recent notes' own section, in note order
            recent = [
                i
                for i in members
                if cands[i].recency >= max_recency - (1 if section != "Plan" else 0)
            ]
            pool = recent or sorted(members, key=lambda i: -cands[i].recency)[: caps[section]]
            for i in sorted(pool, key=lambda i: (-cands[i].recency, cands[i].unit.ordinal)):
                add(section, unit_pos[id(cands[i].unit)], cands[i].unit.text)
        else:
            for i in sorted(members, key=lambda i: -cands[i].score)[: caps[section]]:
                if cands[i].score > 0:
                    add(section, unit_pos[id(cands[i].unit)], cands[i].unit.text)
    # unstructured text: keep only the best few overall so the skeleton stays a summary
    if not any(c.unit.section for c in cands) and not facts:
        budget = max(3, min(8, len(cands) // 6))
        ranked = sorted(
            (s for s in skeleton if s[3] is not None),
            key=lambda s: -cands[s[3]].score,  # type: ignore[index]
        )[:budget]
        keep = {id(s) for s in ranked}
        skeleton = [s for s in skeleton if id(s) in keep]
        skeleton.sort(key=lambda s: (cands[s[3]].recency, cands[s[3]].unit.ordinal))  # type: ignore[index]
        used_units = {s[3] for s in skeleton if s[3] is not None}
    extra = [
        i for i in sorted(range(len(cands)), key=lambda i: -cands[i].score) if i not in used_units
    ]
    return Selection(
        index=index,
        skeleton=skeleton,
        extra=extra,
        candidates=cands,
        note_dates={n.id: iso_date(n.date) for n in notes},
    )


def prompt_candidates(sel: Selection) -> list[tuple[str, int | None]]:
    """What the model may be shown, best first: the skeleton, then the ranked extra units."""
    out: list[tuple[str, int | None]] = [(t, u) for _s, _unit, t, u in sel.skeleton]
    out += [(sel.index.units[i].text, i) for i in sel.extra]
    return out


def fit_prompt_lines(
    candidates: Sequence[tuple[str, int | None]],
    count_tokens: Callable[[str], int | float],
    base: int | float,
    budget: int | float,
) -> tuple[list[str], list[int | None]]:
    """The candidates that fit in ``budget`` tokens after ``base`` (the empty prompt), in order.

    Shared with fine-tuning (``noteward.training.data``), which builds training prompts the
    same way so the model is trained on prompts shaped like the ones it is given.
    """
    lines: list[str] = []
    ids: list[int | None] = []
    used = base
    for text, uidx in candidates:
        line = f"[S{len(lines) + 1}] {' '.join(text.split())}\n"
        n = count_tokens(line)
        if used + n > budget:
            if used > base:
                break
            continue  # a single huge unit: try the next one
        lines.append(text)
        ids.append(uidx)
        used += n
    return lines, ids



def similar_words(a: str, b: str) -> float:
    """Shared content words over the shorter side's: 1.0 when one restates the other."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))
