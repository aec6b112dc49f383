"""Composition: what the clinician reads, built from a selection and the record's facts.

Selection (``noteward.llm.selection``) finds and ranks what the notes say; composition
decides what the summary states, as of the newest note:

- **Current state.** The latest dated statement wins: current medications are those whose
  latest order is active, a change of strength or form is one line ("lisinopril 10 mg → 20
  mg oral tablet", dated when the new one started); problems are split into active and
  resolved (FHIR clinicalStatus / abatement), a diagnosis superseded by a more specific one
  (prediabetes by type 2 diabetes) shows the current one, and a complication "due to" an
  active problem is folded into it. Social and administrative findings (employment,
  education, stress...) leave Problems for one short Social line.
- **Conflicts are shown, never resolved silently.** Allergy statements (FHIR
  AllergyIntolerance and every note's allergy lines, wherever in the note they were written)
  are compared: the newest wins and carries the disagreeing statements, with their dates and
  sources, as ``conflicts`` ("No Known Allergies." in older notes against a penicillin
  allergy documented in the newest one).
- **Recent findings** come from the notes of the last ``recent_months`` of the record
  (counted back from the newest note), each dated; for a repeated measurement only the
  newest value is kept.
- **A length cap** (``max_sentences``) for the whole summary, top line and model sentences
  included: sections share it by priority (allergies and problems first), a few slots are
  kept for the model, and what the cap leaves out is counted per section.
- **The top line** says who the patient is and why they were seen last (age, sex, main
  active problems, the newest visit's complaint), composed from facts. For a deceased
  patient a note dated after death (Synthea's death certification) is no visit: the line
  names the newest note on or before death and says that later notes exist. A model-written line
  replaces it once a model is trained to write one (``SummaryService.synopsis_writer``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from noteward.core.models import Conflict, SourceSpan
from noteward.llm.grounding import content_words, split_units
from noteward.llm.selection import (
    ALLERGY_RE,
    Selection,
    content_rules,
    is_social,
    iso_date,
    similar_words,
)

_ENDED = frozenset(
    {
        "resolved",
        "inactive",
        "remission",
        "stopped",
        "completed",
        "entered-in-error",
        "cancelled",
        "refuted",
        "ended",
        "revoked",
    }
)
_REASON_HEADERS = ("chief complaint", "reason for visit", "cc", "reason for encounter")


@dataclass
class Draft:
    """A sentence the summary will state, before it is aligned to its sources."""

    section: str
    text: str
    origin: str  # "extract" (copied from a note) or "fact" (composed from the record)
    date: str | None
    unit_idx: int | None = None  # the source unit an extract copies (it aligns exactly)
    spans: list[SourceSpan] = field(default_factory=list)  # where a fact line's facts are written
    located: float = 1.0  # share of a fact line's parts found written in a note
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass(frozen=True)
class Who:
    """What the top line needs to know about the patient."""

    birth_date: str | None = None
    sex: str | None = None
    deceased_date: str | None = None


@dataclass
class Composition:
    """The drafts within the cap, in section order, and what the cap left out."""

    drafts: list[Draft]
    omitted: dict[str, int]
    window: tuple[str | None, str | None]  # Recent findings: (first day, newest note's date)
    max_sentences: int
    has_allergy_state: bool
    stopped: dict[str, str] = field(default_factory=dict)  # medication (lower) -> last ordered
    who: Who | None = None  # the patient the top line is about (None for a text file)

    def conflicts_for(self, text: str) -> list[Conflict]:
        """What the record says against a model sentence (a medication it has stopped)."""
        low = " ".join(text.lower().split())
        return [
            Conflict(f"Stopped in the record (last ordered {last})", last, [])
            for name, last in self.stopped.items()
            if name in low or (len(low) > 12 and low.rstrip(".") in name)
        ][:1]

    def place_model_sentence(self, section: str, text: str, when: str | None) -> str | None:
        """The section a model sentence goes under, or None when it must not be shown.

        Allergies are stated from the records (with their conflicts), so the model's own
        allergy lines are dropped once that state exists; social findings never go under
        Problems; a medication line naming an order the record has stopped is not current
        (it goes with the stopped ones, its stop as its conflict); a "recent finding" from
        outside the window is not recent (it goes to Other).
        """
        if ALLERGY_RE.search(text):
            return None if self.has_allergy_state else "Allergies"
        if section == "Medications" and self.conflicts_for(text):
            return "Stopped medications"
        if section in ("Problems", "Resolved problems") and is_social(text):
            return None
        if section == "Recent findings":
            start, newest = self.window
            if when is None or (start and when < start) or (newest and when > newest):
                return "Other"
        return section


# ---- dates --------------------------------------------------------------------------------


def months_before(iso: str, months: int) -> str:
    """The ISO date ``months`` calendar months before ``iso`` (day clamped to the month)."""
    d = date.fromisoformat(iso[:10])
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    for day in (d.day, 30, 29, 28):
        try:
            return date(y, m + 1, day).isoformat()
        except ValueError:
            continue
    raise ValueError(iso)  # pragma: no cover - day 28 always exists


def age_on(birth: str | None, when: str | None) -> int | None:
    """Whole years from ``birth`` to ``when`` (ISO dates), or None."""
    b, w = iso_date(birth), iso_date(when)
    if not b or not w:
        return None
    bd, wd = date.fromisoformat(b), date.fromisoformat(w)
    return wd.year - bd.year - ((wd.month, wd.day) < (bd.month, bd.day))


# ---- names --------------------------------------------------------------------------------


@functools.cache
def _tag_re() -> re.Pattern[str]:
    return re.compile(str(content_rules()["semantic_tag"]), re.IGNORECASE)


@functools.cache
def _nka_re() -> re.Pattern[str]:
    return re.compile(str(content_rules()["no_known_allergies"]), re.IGNORECASE)


@functools.cache
def _tag_in_text_re() -> re.Pattern[str]:
    return re.compile(str(content_rules()["semantic_tag_in_text"]), re.IGNORECASE)


def without_semantic_tags(text: str) -> str:
    """A sentence as the summary shows it: SNOMED semantic tags ("(finding)", "(procedure)")
    removed wherever they stand, spacing before punctuation tidied.

    Only the shown text changes: a sentence is aligned with the tags in (they are in the
    note, so a copy stays an exact, verbatim match of the span it cites), and the shown
    text differs from that span only by them. A text that is nothing but a tag stays."""
    out = _tag_in_text_re().sub("", text)
    out = re.sub(r"\s+([,.;:])", r"\1", " ".join(out.split()))
    return out if out.strip(" .,;:") else " ".join(text.split())


def clean_name(display: str) -> str:
    """A coded name as a reader writes it: no SNOMED semantic tag, first letter capital."""
    name = _tag_re().sub("", " ".join(display.split())).strip()
    return name[:1].upper() + name[1:] if name else name


def is_no_known_allergies(text: str) -> bool:
    """True for a statement that the patient has no known allergies."""
    return bool(_nka_re().search(text))


_FORM_WORDS = frozenset(
    "hr ml mg mcg unt g oral tablet capsule injection extended release solution suspension"
    " spray mucosal injectable topical cream patch inhaler actuat day pack".split()
)


def drug_key(display: str) -> str:
    """The drug a medication display names (its first word that is not a number or form)."""
    for w in re.findall(r"[a-z]+", display.lower()):
        if w not in _FORM_WORDS and len(w) > 2:
            return w
    return display.lower()


def change_text(old: str, new: str) -> str:
    """'lisinopril 10 mg → 20 mg oral tablet': the shared words said once."""
    a, b = old.split(), new.split()
    p = 0
    while p < min(len(a), len(b)) - 1 and a[p].lower() == b[p].lower():
        p += 1
    q = 0
    while q < min(len(a), len(b)) - p - 1 and a[-1 - q].lower() == b[-1 - q].lower():
        q += 1
    if p == 0 and q == 0:
        return f"{old} → {new}"
    mid_a, mid_b = " ".join(a[p : len(a) - q]), " ".join(b[p : len(b) - q])
    head, tail = " ".join(b[:p]), " ".join(b[len(b) - q :])
    return " ".join(x for x in (head, f"{mid_a} → {mid_b}", tail) if x)


# ---- the sections -------------------------------------------------------------------------


class _Locator:
    """Finds where a fact's name is written in the notes, newest note first."""

    def __init__(self, sel: Selection) -> None:
        self.sel = sel
        self._cache: dict[str, SourceSpan | None] = {}

    def span(self, display: str) -> SourceSpan | None:
        key = display.lower()
        if key not in self._cache:
            span = self.sel.index.find_exact(display)
            if span is None:
                bare = _tag_re().sub("", display).strip()
                span = self.sel.index.find_exact(bare) if bare and bare != display else None
            self._cache[key] = span
        return self._cache[key]

    def text(self, span: SourceSpan) -> str:
        return " ".join(self.sel.index.texts[span.note_id][span.start : span.end].split())


def _fact_draft(
    loc: _Locator, section: str, text: str, when: str | None, displays: Sequence[str]
) -> Draft:
    spans = [s for s in (loc.span(d) for d in displays) if s is not None]
    located = len(spans) / len(displays) if displays else 1.0
    return Draft(section, text, "fact", when, spans=spans, located=located)


@dataclass
class _Condition:
    name: str  # clean name
    display: str  # as recorded
    active: bool
    onset: str | None
    ended: str | None
    disorder: bool
    previously: list[str] = field(default_factory=list)
    with_: list[str] = field(default_factory=list)


def _conditions(facts: Sequence[Mapping[str, Any]]) -> list[_Condition]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in facts:
        if f.get("kind") == "condition" and f.get("display"):
            groups.setdefault(clean_name(str(f["display"])).lower(), []).append(f)
    out = []
    for fs in groups.values():
        fs = sorted(fs, key=lambda f: str(f.get("date") or ""))
        active = [
            f
            for f in fs
            if str(f.get("status") or "active").lower() not in _ENDED and not f.get("end_date")
        ]
        last = fs[-1]
        display = str(last["display"])
        tag = _tag_re().search(display)
        out.append(
            _Condition(
                name=clean_name(display),
                display=display,
                active=bool(active),
                onset=iso_date(str(active[-1].get("date") or "")) if active else iso_date(str(last.get("date") or "")),
                ended=None if active else iso_date(str(last.get("end_date") or last.get("date") or "")),
                disorder=not tag or "disorder" in tag.group(0).lower(),
            )
        )
    return out


def _words(text: str) -> set[str]:
    return set(content_words(text))


def _fold_problems(active: list[_Condition]) -> list[_Condition]:
    """Drop superseded diagnoses and fold complications into the problem they are due to."""
    rules = [(re.compile(a, re.I), re.compile(b, re.I)) for a, b in content_rules()["supersedes"]]
    gone: set[int] = set()
    for specific_re, general_re in rules:
        specific = [c for c in active if specific_re.search(c.name)]
        if not specific:
            continue
        for c in active:
            if id(c) not in gone and general_re.search(c.name) and c not in specific:
                gone.add(id(c))
                specific[0].previously.append(c.name.lower())
    # the same name with another number (stage 3 / stage 4), or one of a family of codes
    # where only the newest holds (BMI 30+ / 40+): the newest onset
    families = [re.compile(p, re.I) for p in content_rules().get("newest_of", [])]
    by_key: dict[str, list[_Condition]] = {}
    for c in active:
        if id(c) not in gone:
            fam = next((f.pattern for f in families if f.search(c.name)), None)
            by_key.setdefault(fam or re.sub(r"\d+\+?", "#", c.name.lower()), []).append(c)
    for same in by_key.values():
        if len(same) > 1:
            same.sort(key=lambda c: c.onset or "")
            for c in same[:-1]:
                gone.add(id(c))
                same[-1].previously.append(c.name.lower())
    kept = [c for c in active if id(c) not in gone]
    # "X due to <problem>": shown with that problem
    for c in kept:
        m = re.match(r"(.+?) due to (.+)$", c.name, re.I)
        if not m:
            continue
        cause = _words(m.group(2))
        parent = next(
            (p for p in kept if p is not c and id(p) not in gone and cause and cause <= _words(p.name)),
            None,
        )
        if parent is not None:
            gone.add(id(c))
            parent.with_.append(m.group(1).lower())
    return [c for c in kept if id(c) not in gone]


@functools.cache
def _priority_res() -> list[re.Pattern[str]]:
    return [re.compile(r"\b" + p, re.I) for p in content_rules().get("important_problems", [])]


def _importance(c: _Condition) -> int:
    return sum(1 for p in _priority_res() if p.search(c.name))


def _problem_text(c: _Condition) -> str:
    text = c.name
    if c.with_:
        text += ", with " + ", ".join(dict.fromkeys(c.with_))
    if c.previously:
        text += " (previously " + ", ".join(dict.fromkeys(c.previously)) + ")"
    return text


def _problems(loc: _Locator, facts: Sequence[Mapping[str, Any]]) -> tuple[list[Draft], list[Draft], list[Draft], list[str]]:
    """(active problems, resolved problems, the social line, active problem names by rank)."""
    conds = _conditions(facts)
    social = [c for c in conds if is_social(c.display) and c.active]
    clinical = [c for c in conds if not is_social(c.display)]
    active = _fold_problems([c for c in clinical if c.active])
    active.sort(key=lambda c: (not c.disorder, -_importance(c), _neg(c.onset)))
    active_names = {c.name.lower() for c in clinical if c.active}
    resolved = [c for c in clinical if not c.active and c.name.lower() not in active_names]
    resolved.sort(key=lambda c: _neg(c.ended))
    act = [_fact_draft(loc, "Problems", _problem_text(c), c.onset, [c.display]) for c in active]
    res = [_fact_draft(loc, "Resolved problems", c.name, c.ended, [c.display]) for c in resolved]
    soc: list[Draft] = []
    if social:
        social.sort(key=lambda c: _neg(c.onset))
        social = social[:8]
        names = [c.name.lower() for c in social]
        soc.append(
            _fact_draft(
                loc, "Social", "Social: " + "; ".join(names) + ".",
                max((c.onset or "" for c in social), default=None) or None,
                [c.display for c in social],
            )
        )
    return act, res, soc, [c.name.lower() for c in active]


def _neg(iso: str | None) -> tuple[int, ...]:
    """Sort key putting the newest ISO date first."""
    d = iso or "0000-00-00"
    return tuple(-int(x) for x in d.split("-"))


def _medications(
    sel: Selection, loc: _Locator, facts: Sequence[Mapping[str, Any]]
) -> tuple[list[Draft], list[Draft]]:
    """Current medications (the record's active orders and changes of strength or form) and
    the stopped orders the newest note still lists (one line, see ``_note_list_conflicts``)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in facts:
        if f.get("kind") == "medication" and f.get("display"):
            groups.setdefault(str(f["display"]).lower(), []).append(f)
    runs = {
        k: sorted(fs, key=lambda f: str(f.get("date") or "")) for k, fs in groups.items()
    }
    current = [
        k for k, fs in runs.items() if str(fs[-1].get("status") or "active").lower() not in _ENDED
    ]
    drafts: list[Draft] = []
    for k in current:
        fs = runs[k]
        display = str(fs[-1]["display"])
        span = loc.span(display)
        now_text = loc.text(span) if span else display
        last = iso_date(str(fs[-1].get("date") or ""))
        # the same drug in another strength or form, before this one: a change
        before = [
            (iso_date(str(runs[o][-1].get("date") or "")) or "", o)
            for o in runs
            if o != k and drug_key(o) == drug_key(k)
        ]
        before = [b for b in before if b[0] and b[0] <= (last or "")]
        if before:
            prev_last, prev = max(before)
            started = next(
                (iso_date(str(f.get("date") or "")) for f in fs if (iso_date(str(f.get("date") or "")) or "") > prev_last),
                last,
            )
            prev_display = str(runs[prev][-1]["display"])
            prev_span = loc.span(prev_display)
            prev_text = loc.text(prev_span) if prev_span else prev_display
            d = _fact_draft(loc, "Medications", change_text(prev_text, now_text), started, [display, prev_display])
            drafts.append(d)
        else:
            drafts.append(_fact_draft(loc, "Medications", now_text, last, [display]))
    changed = [d for d in drafts if "→" in d.text]
    rest = [d for d in drafts if "→" not in d.text]
    rest.sort(key=lambda d: _neg(d.date))
    changed.sort(key=lambda d: _neg(d.date))
    stopped = _note_list_conflicts(sel, loc, runs, set(current), drafts)
    return changed + rest, stopped


def _note_list_conflicts(
    sel: Selection,
    loc: _Locator,
    runs: Mapping[str, list[Mapping[str, Any]]],
    current: set[str],
    drafts: list[Draft],
) -> list[Draft]:
    """The newest note's medication list against the record's orders.

    An order's status is its state when the record was exported, so it is newer than any
    note: a medication the list names whose order the record has stopped is not current.
    Synthea's notes list every medication ever ordered, so these are many; they go on one
    "Stopped medications" line, each with the note that still lists it as its conflict
    (shown, never silently dropped). An active order the newer list leaves out gets that
    list as its conflict.
    """
    listed = [
        (i, c)
        for i, c in enumerate(sel.candidates)
        if c.section == "Medications" and c.unit.section == "Medications"
    ]
    if not listed:
        return []
    top = max(c.recency for _i, c in listed)
    newest = [(i, c) for i, c in listed if c.recency == top]
    note_date = newest[0][1].date
    if not note_date:
        return []
    names = {" ".join(c.unit.text.lower().split()): (i, c) for i, c in newest}
    items: list[tuple[str, str, str, SourceSpan]] = []  # (last ordered, name, display, span)
    succeeded = {drug_key(k) for k in current}  # the old strength of a change line says itself
    for name, (_i, c) in names.items():
        fs = runs.get(name)
        if fs is None or name in current or drug_key(name) in succeeded:
            continue
        last = iso_date(str(fs[-1].get("date") or ""))
        if last and last < note_date:
            items.append((last, " ".join(c.unit.text.split()), str(fs[-1]["display"]), _unit_span(c.unit)))
    out: list[Draft] = []
    if items:
        items.sort(key=lambda t: _neg(t[0]))
        text = (
            f"Stopped in the record, still listed on {note_date}: "
            + "; ".join(f"{name} (last ordered {last})" for last, name, _d, _sp in items)
            + "."
        )
        line = _fact_draft(loc, "Stopped medications", text, items[0][0], [d for _l, _n, d, _sp in items])
        line.conflicts = [
            Conflict(f"{name}: listed as a medication in the note of {note_date}", note_date, [sp])
            for _last, name, _d, sp in items
        ]
        out.append(line)
    list_span = SourceSpan(newest[0][1].unit.note_id, newest[0][1].unit.start, newest[0][1].unit.end)
    for k in current:
        last = iso_date(str(runs[k][-1].get("date") or ""))
        if k not in names and last and last < note_date:
            for d in drafts:
                if d.text.lower().endswith(k) or k in d.text.lower():
                    d.conflicts.append(
                        Conflict(f"Not in the medication list of {note_date}", note_date, [list_span])
                    )
    return out


@dataclass
class _Statement:
    text: str
    date: str | None
    sources: list[SourceSpan]
    negative: bool
    unit_idx: int | None
    origin: str


def _allergies(sel: Selection, loc: _Locator, facts: Sequence[Mapping[str, Any]]) -> list[Draft]:
    """The newest allergy statement wins; the statements it disagrees with are its conflicts."""
    stmts: list[_Statement] = []
    for f in facts:
        if f.get("kind") != "allergy" or not f.get("display"):
            continue
        if str(f.get("status") or "active").lower() in _ENDED:
            continue
        display = str(f["display"])
        span = loc.span(display)
        stmts.append(
            _Statement(
                f"Allergy to {clean_name(display).lower()}",
                iso_date(str(f.get("date") or "")),
                [span] if span else [],
                False,
                None,
                "fact",
            )
        )
    by_note_header: set[str] = set()  # notes with positive lines under an allergy header
    units: list[tuple[int, Any]] = [
        (i, c) for i, c in enumerate(sel.candidates) if c.section == "Allergies"
    ]
    for _i, c in units:
        if c.unit.section == "Allergies" and not is_no_known_allergies(c.unit.text):
            by_note_header.add(c.unit.note_id)
    for i, c in units:
        u = c.unit
        neg = is_no_known_allergies(u.text)
        if not neg and u.section != "Allergies" and u.note_id in by_note_header:
            continue  # the note's own allergy list says it; its other mentions repeat it
        stmts.append(
            _Statement(" ".join(u.text.split()), c.date, [_unit_span(u)], neg, i, "extract")
        )
    if not stmts:
        return []
    negatives = sorted((s for s in stmts if s.negative), key=lambda s: s.date or "")
    positives = sorted((s for s in stmts if not s.negative), key=lambda s: s.date or "", reverse=True)
    # one line per allergen: a later statement of the same allergy replaces an earlier one
    # (the record's facts and the notes' lines are compared with each other, never merged)
    kept: list[_Statement] = []
    for s in positives:
        if all(k.origin != s.origin or similar_words(s.text, k.text) < 0.6 for k in kept):
            kept.append(s)
    drafts: list[Draft] = []
    newest_neg = negatives[-1] if negatives else None
    newest_pos = kept[0] if kept else None
    if newest_pos is None and newest_neg is not None:
        return [_statement_draft(newest_neg, [])]
    if newest_neg is None or (newest_pos and (newest_pos.date or "") >= (newest_neg.date or "")):
        conflict = [_as_conflict(newest_neg)] if newest_neg else []
        for s in kept:
            drafts.append(_statement_draft(s, conflict))
        return drafts
    # The newest statement says no known allergies and recorded allergies disagree with it.
    # Neither wins silently: each allergy keeps its own line (a clinician must not find a
    # documented allergy only inside a tooltip), every line carrying the other side.
    # The negative statement comes first so that the cap, which folds a long list's tail
    # into one "Also recorded" line, never drops it.
    drafts = [_statement_draft(newest_neg, [_as_conflict(s) for s in kept])]
    drafts += [_statement_draft(s, [_as_conflict(newest_neg)]) for s in kept]
    return drafts


def _unit_span(u: Any) -> SourceSpan:
    return SourceSpan(u.note_id, u.start, u.end)


def _as_conflict(s: _Statement) -> Conflict:
    return Conflict(s.text, s.date, list(s.sources))


def _statement_draft(s: _Statement, conflicts: list[Conflict]) -> Draft:
    d = Draft("Allergies", s.text, s.origin, s.date, unit_idx=s.unit_idx, spans=list(s.sources))
    d.located = 1.0 if s.sources else 0.0
    d.conflicts = conflicts
    return d


_ALLERGEN_RE = re.compile(
    r"\b([a-z][a-z-]{3,}) allergy\b|\ballerg(?:y|ic|ic reaction) to ([a-z][a-z-]{3,})", re.I
)


def _allergens(drafts: Sequence[Draft]) -> set[str]:
    """The substances current allergy lines name ("penicillin" in "Penicillin allergy: ...")."""
    out: set[str] = set()
    for d in drafts:
        if is_no_known_allergies(d.text):
            continue
        for m in _ALLERGEN_RE.finditer(d.text):
            word = (m.group(1) or m.group(2) or "").lower()
            if word not in ("drug", "food", "known", "seasonal", "environmental"):
                out.add(word.rstrip("s"))
    return out


def _value_key(text: str) -> str | None:
    """The measurement a finding reports ("blood pressure" in "blood pressure 150/90")."""
    m = re.match(r"\s*([A-Za-z][A-Za-z /()-]{1,40}?)\s*(?:[:=]|is|was|of)?\s*\d", text)
    return " ".join(content_words(m.group(1))) if m else None


def _from_notes(sel: Selection, section: str, since: str | None, newest_only: bool = False) -> list[Draft]:
    cands = sel.candidates
    members = [
        i
        for i, c in enumerate(cands)
        if c.section == section and (since is None or (c.date or "") >= since)
    ]
    if newest_only and members:
        top = max(cands[i].recency for i in members)
        members = [i for i in members if cands[i].recency >= top - 1]
    members.sort(key=lambda i: (-cands[i].recency, cands[i].unit.ordinal))
    drafts: list[Draft] = []
    seen_values: set[str] = set()
    for i in members:
        text = " ".join(cands[i].unit.text.split())
        if text.endswith(":") or is_social(text):
            continue  # a list's lead-in; a social finding is not a clinical one
        key = _value_key(text) if section == "Recent findings" else None
        if key:
            if key in seen_values:
                continue  # an older value of a measurement already shown
            seen_values.add(key)
        if any(similar_words(text, d.text) >= 0.9 for d in drafts):
            continue
        drafts.append(Draft(section, text, "extract", cands[i].date, unit_idx=i))
    return drafts


def _from_skeleton(sel: Selection, section: str) -> list[Draft]:
    out = []
    for sec, _unit, text, uidx in sel.skeleton:
        if sec != section:
            continue
        when = sel.unit_date(uidx) if uidx is not None else None
        out.append(Draft(section, " ".join(text.split()), "extract", when, unit_idx=uidx))
    return out


def last_visit(
    sel: Selection, who: Who | None
) -> tuple[str | None, str | None, list[str]]:
    """(date, note id) of the newest note that is a visit, and the dates of notes that are
    not: for a deceased patient, notes dated after the death date (Synthea writes a
    death-certification encounter after death; a record may hold a late report) are no
    visits, so the newest note on or before the death date is the last one seen. Those
    later notes still count everywhere else in the summary (their facts are the record's)."""
    dated = sorted((d, nid) for nid, d in sel.note_dates.items() if d)
    died = iso_date(who.deceased_date) if who is not None else None
    after = [d for d, _nid in dated if died and d > died]
    seen = [(d, nid) for d, nid in dated if not died or d <= died]
    if seen:
        return seen[-1][0], seen[-1][1], after
    if not dated and len(sel.index.texts) == 1:
        return None, next(iter(sel.index.texts)), []
    return None, None, after


def _top_line(sel: Selection, who: Who, problems: list[str]) -> Draft | None:
    visit, visit_id, after_death = last_visit(sel, who)
    died = iso_date(who.deceased_date) if who.deceased_date else None
    age = age_on(who.birth_date, visit or died)
    sex = {"male": "male", "female": "female", "m": "male", "f": "female"}.get((who.sex or "").lower())
    if age is None and sex is None:
        return None
    person = " ".join(x for x in (f"{age}-year-old" if age is not None else None, sex or "patient") if x)
    if problems:
        named = problems[:3]
        person += " with " + (", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0])
    spans: list[SourceSpan] = []
    reasons: list[str] = []
    if visit_id is not None:
        skips = [re.compile(p, re.I) for p in ("^no complaints\\.?$",)]
        for u in split_units(visit_id, sel.index.texts[visit_id]):
            if u.header in _REASON_HEADERS:
                body = " ".join(u.text.split()).rstrip(".")
                if body and not any(p.match(body) for p in skips):
                    reasons.append(body.lower() if body.istitle() else body[:1].lower() + body[1:])
                    spans.append(_unit_span(u))
    seen = f"; last seen {visit}" if visit else ""
    why = f" for {', '.join(reasons[:4])}" if reasons else (", no complaint recorded" if visit else "")
    dead = ""
    if who.deceased_date:
        dead = f"; died {died or who.deceased_date}"
        if after_death:
            n = len(after_death)
            dates = ", ".join(dict.fromkeys(after_death))
            dead += (
                f"; a note dated after death ({dates}) is not counted as a visit"
                if n == 1
                else f"; {n} notes dated after death ({dates}) are not counted as visits"
            )
    text = f"{person[:1].upper() + person[1:]}{seen}{why}{dead}."
    return Draft("Patient", text, "fact", visit or died, spans=spans)


# ---- the whole summary --------------------------------------------------------------------


def compose(
    sel: Selection,
    facts: Sequence[Mapping[str, Any]] = (),
    *,
    who: Who | None = None,
    recent_months: int = 12,
    max_sentences: int = 15,
    model_slots: int = 0,
) -> Composition:
    """The summary's sentences (drafts) as of the newest note, within the length cap."""
    newest = max((d for d in sel.note_dates.values() if d), default=None)
    since = months_before(newest, recent_months) if newest else None
    loc = _Locator(sel)
    sections: dict[str, list[Draft]] = {}

    has_conditions = any(f.get("kind") == "condition" for f in facts)
    problem_names: list[str] = []
    if has_conditions:
        act, res, soc, problem_names = _problems(loc, facts)
        sections["Problems"], sections["Resolved problems"], sections["Social"] = act, res, soc
    else:
        notes_problems = _from_skeleton(sel, "Problems")
        sections["Problems"] = [d for d in notes_problems if not is_social(d.text)]
    if any(f.get("kind") == "medication" for f in facts):
        sections["Medications"], sections["Stopped medications"] = _medications(sel, loc, facts)
    else:
        sections["Medications"] = _from_skeleton(sel, "Medications")
    sections["Allergies"] = _allergies(sel, loc, facts)
    sections["Recent findings"] = _from_notes(sel, "Recent findings", since)
    allergens = _allergens(sections["Allergies"])
    sections["Plan"] = [
        d  # an allergen's avoidance is stated by the allergy line, not as a plan item
        for d in _from_notes(sel, "Plan", since, newest_only=True)
        if not any(re.search(r"\b" + re.escape(a), d.text, re.I) for a in allergens)
    ]
    other = [d for d in _from_skeleton(sel, "Other") if not d.date or not since or d.date >= since]
    sections["Other"] = [d for d in other if not (sections.get("Social") and is_social(d.text))]
    if who is not None:
        top = _top_line(sel, who, problem_names)
        sections["Patient"] = [top] if top else []
    # unstructured text (a dialogue, one note without headers): the ranked skeleton as chosen
    if not facts and not any(c.unit.section for c in sel.candidates):
        for sec in ("Allergies", "Recent findings", "Plan", "Other"):
            sections[sec] = _from_skeleton(sel, sec)

    # a statement is made once: the first section (by priority) that makes it keeps it
    said: list[str] = []
    for sec in content_rules()["priority"]:
        fresh = []
        for d in sections.get(sec, []):
            if sec != "Patient" and any(similar_words(d.text, t) >= 0.9 for t in said):
                continue
            fresh.append(d)
            if sec != "Patient":  # the top line names problems the sections list
                said.append(d.text)
        sections[sec] = fresh
    drafts, omitted = _cap(sections, max(1, max_sentences - model_slots))
    return Composition(
        drafts=drafts,
        omitted=omitted,
        window=(since, newest),
        max_sentences=max_sentences,
        has_allergy_state=bool(sections["Allergies"]),
        stopped=_stopped_medications(facts),
        who=who,
    )


def _stopped_medications(facts: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Medications whose latest order the record has stopped: name (lower) -> its date."""
    last: dict[str, Mapping[str, Any]] = {}
    for f in facts:
        if f.get("kind") == "medication" and f.get("display"):
            k = " ".join(str(f["display"]).lower().split())
            if k not in last or str(f.get("date") or "") >= str(last[k].get("date") or ""):
                last[k] = f
    return {
        k: iso_date(str(f.get("date") or "")) or "undated"
        for k, f in last.items()
        if str(f.get("status") or "active").lower() in _ENDED
    }


def _cap(sections: Mapping[str, list[Draft]], budget: int) -> tuple[list[Draft], dict[str, int]]:
    """Share ``budget`` sentences between sections: by priority, in weighted rounds."""
    rules = content_rules()
    quotas: dict[str, int] = rules["quotas"]
    weights: dict[str, int] = rules.get("weights", {})
    priority: list[str] = rules["priority"]
    start: dict[str, int] = rules.get("start_round", {})
    taken = {s: 0 for s in priority}
    left = budget
    rounds = 0
    progress = True
    while left > 0 and (progress or rounds <= max(start.values(), default=0)):
        progress = False
        rounds += 1
        for sec in priority:
            if rounds <= start.get(sec, 0):
                continue
            for _ in range(weights.get(sec, 1)):
                items = sections.get(sec, [])
                if left > 0 and taken[sec] < min(quotas.get(sec, 1), len(items)):
                    taken[sec] += 1
                    left -= 1
                    progress = True
    drafts: list[Draft] = []
    omitted: dict[str, int] = {}
    for sec in priority:
        items = sections.get(sec, [])
        chosen = items[: taken[sec]]
        rest = items[taken[sec] :]
        if rest and sec in _LISTED and len(chosen) >= 2:
            # the rest of the list in one line (with its items' conflicts), not left out
            tail = [chosen[-1], *rest]
            chosen = [*chosen[:-1], _listed(sec, tail)]
            rest = []
        drafts.extend(chosen)
        if rest:
            omitted[sec] = len(rest)
    return drafts, omitted


_LISTED = {
    "Allergies": "Also recorded",  # an allergy is never left out by the cap
    "Problems": "Also active",
    "Medications": "Also current",
    "Resolved problems": "Also resolved",
}


def _listed(section: str, items: Sequence[Draft]) -> Draft:
    """Several fact lines as one ("Also active: a; b; c."), dated by the newest."""
    text = f"{_LISTED[section]}: " + "; ".join(d.text.rstrip(".") for d in items) + "."
    spans = [sp for d in items for sp in d.spans]
    located = sum(d.located for d in items) / len(items)
    when = max((d.date for d in items if d.date), default=None)
    conflicts = [
        Conflict(f"{d.text}: {c.text}", c.date, c.sources) for d in items for c in d.conflicts
    ]
    return Draft(section, text, "fact", when, spans=spans, located=located, conflicts=conflicts)
