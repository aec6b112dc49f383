"""The aligner: checks every summary sentence against the notes it claims to rest on.

Grounding is done by Noteward, not taken on trust from the model. For a summary sentence:

1. If its text occurs in a note (case and whitespace aside), that exact span is its source
   and it is supported (support 1.0) — extractive sentences always land here.
2. Otherwise the notes are split into source units (sentences, list items and clauses,
   with end-exclusive code-point offsets into ``Note.text``) and the units sharing the most
   weighted content words with the sentence are chosen (greedy cover, at most three spans;
   a further span must add at least two new words, so one stray word cannot pull in an
   unrelated note).
3. The sentence is *unsupported* when its sources cover too little of it, or when a
   critical fact does not appear in the chosen sources: a number or dose, a date (digits or
   month name), or a drug name (lexicon plus drug-name suffixes, from
   ``resources/prompts/summary_rules.json``); or when its negation differs from the
   primary source's (a flipped "no"/"denies"/"never").

``support`` is the weighted share of the sentence's content words found in its sources,
capped at 0.4 when a critical check fails, so it stays a score in [0, 1].
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from noteward.core.models import SourceSpan
from noteward.llm.prompts import resources_dir

SUPPORT_THRESHOLD = 0.6
MAX_SPANS = 3

_WORD_RE = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+(?:[.,]\d+)*")
_NUMBER_RE = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*")
_STOP = frozenset(
    """a an the and or of to in on at for with by from as is are was were be been being has have had
    this that these those it its he she they them his her their patient patients pt which who whom
    also then than there here into over under about after before during per via s
    """.split()
)


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    """The summary rules (section headers, skip patterns, cues, drug lexicon)."""
    data = json.loads(
        (resources_dir() / "prompts" / "summary_rules.json").read_text(encoding="utf-8")
    )
    return dict(data)


@lru_cache(maxsize=1)
def _lexicons() -> tuple[frozenset[str], tuple[str, ...], frozenset[str], re.Pattern[str]]:
    r = rules()
    drugs = frozenset(w.lower() for name in r["drug_names"] for w in name.split() if len(w) > 2)
    suffixes = tuple(sorted((s.lower() for s in r["drug_suffixes"]), key=len, reverse=True))
    months = frozenset(m.lower() for m in r["month_names"])
    cues = sorted(r["negation_cues"], key=len, reverse=True)
    neg = re.compile(
        r"(?:(?<![A-Za-z])(?:"
        + "|".join(re.escape(c) for c in cues if c != "n't")
        + r")(?![A-Za-z]))|n't",
        re.IGNORECASE,
    )
    return drugs, suffixes, months, neg


def normalize_word(w: str) -> str:
    """Lower-case; numbers lose thousands separators; crude plural folding for words."""
    w = w.lower()
    if w[0].isdigit():
        w = w.replace(",", "")
        if "." in w:
            w = w.rstrip("0").rstrip(".") if re.fullmatch(r"\d+\.\d+", w) else w
        return w
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and not w.endswith("us"):
        return w[:-1]
    return w


def content_words(text: str) -> list[str]:
    """Normalized content words (stop words dropped) of a text."""
    out = []
    for m in _WORD_RE.finditer(text):
        w = normalize_word(m.group(0))
        if w and w not in _STOP:
            out.append(w)
    return out


_UNITS = {
    "mg": "mg",
    "mcg": "mcg",
    "ug": "mcg",
    "g": "g",
    "gram": "g",
    "grams": "g",
    "kg": "kg",
    "ml": "ml",
    "l": "l",
    "unit": "unit",
    "units": "unit",
    "unt": "unit",
    "iu": "unit",
    "%": "%",
    "percent": "%",
    "mmhg": "mmhg",
    "lb": "lb",
    "lbs": "lb",
    "pound": "lb",
    "pounds": "lb",
    "cm": "cm",
    "mm": "mm",
    "inch": "in",
    "inches": "in",
    "second": "s",
    "seconds": "s",
    "minute": "min",
    "minutes": "min",
    "min": "min",
    "mins": "min",
    "hour": "h",
    "hours": "h",
    "hr": "h",
    "hrs": "h",
    "day": "d",
    "days": "d",
    "week": "wk",
    "weeks": "wk",
    "wk": "wk",
    "wks": "wk",
    "month": "mo",
    "months": "mo",
    "year": "y",
    "years": "y",
    "yr": "y",
    "yrs": "y",
    "time": "x",
    "times": "x",
}
_QTY_RE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:[.,]\d+)*)\s*-?\s*(%|[A-Za-z]+)(?![A-Za-z])")


def quantities_in(text: str) -> set[tuple[str, str]]:
    """(number, unit) pairs such as ('10', 'mg') or ('2', 'wk'): a dose or duration."""
    out = set()
    for m in _QTY_RE.finditer(text):
        unit = _UNITS.get(m.group(2).lower())
        if unit:
            out.add((normalize_word(m.group(1)), unit))
    return out


def numbers_in(text: str) -> list[str]:
    """Normalized numbers (doses, values, date parts) in a text."""
    return [normalize_word(m.group(0)) for m in _NUMBER_RE.finditer(text)]


def is_drug(word: str) -> bool:
    """Whether a normalized word looks like a drug name (lexicon or suffix rule)."""
    drugs, suffixes, _, _ = _lexicons()
    if word in drugs:
        return True
    return len(word) >= 6 and word.isalpha() and any(word.endswith(s) for s in suffixes)


def drugs_in(text: str) -> set[str]:
    return {w for w in content_words(text) if is_drug(w)}


def months_in(text: str) -> set[str]:
    _, _, months, _ = _lexicons()
    return {
        w
        for w in (m.group(0).lower() for m in _WORD_RE.finditer(text))
        if w in months and w != "may"
    }


def is_negated(text: str) -> bool:
    """Whether a sentence carries a negation cue (no, not, denies, never, without ...)."""
    _, _, _, neg = _lexicons()
    return neg.search(text) is not None


# ---- source units ---------------------------------------------------------------------

_LINE_RE = re.compile(r"[^\n]+")
_SENT_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_BULLET_PREFIX_RE = re.compile(r"^(?:\s*(?:[-*\u2022]|\d+[.)]|#{1,6})\s+|\s+)")
_HEADER_RE = re.compile(
    r"^\s{0,3}#{1,6}\s+(?P<name>[^\n#]{1,80}?)\s*#*\s*$|^(?P<name2>[A-Za-z][A-Za-z/&\- ]{1,40}):\s*$"
)
_INLINE_HEADER_RE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z/&\- ]{1,40}):\s+\S")


@dataclass(frozen=True)
class SourceUnit:
    """A sentence, list item or clause of a note, with its offsets and section."""

    note_id: str
    start: int
    end: int
    text: str
    section: str | None  # summary section from the note's header, if known
    header: str | None  # the raw header text (lower-case)
    ordinal: int  # position of the unit within its note


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t\r-*\u2022#":
        start += 1
    while end > start and text[end - 1] in " \t\r;,":
        end -= 1
    return start, end


def split_units(note_id: str, text: str) -> list[SourceUnit]:
    """Split a note into source units: lines → sentences → ';'-separated list items.

    Headers (markdown ``# X`` or ``X:`` alone on a line) are not units; they set the
    section of the units below them.
    """
    header_map: dict[str, str] = rules()["header_sections"]
    units: list[SourceUnit] = []
    header: str | None = None
    section: str | None = None
    for lm in _LINE_RE.finditer(text):
        line = lm.group(0)
        if not line.strip():
            continue
        hm = _HEADER_RE.match(line)
        if hm:
            name = (hm.group("name") or hm.group("name2") or "").strip().lower().rstrip(":")
            header = name
            section = header_map.get(name)
            continue
        base = lm.start()
        line_section = section
        im = _INLINE_HEADER_RE.match(line)
        if im and im.group("name").strip().lower() in header_map:
            line_section = header_map[im.group("name").strip().lower()]
            # the unit starts after "Medications: " so the header is not part of the fact
            cut = line.index(":") + 1
            while cut < len(line) and line[cut] in " \t":
                cut += 1
            base += cut
            line = line[cut:]
        # sentences within the line
        pieces: list[tuple[int, int]] = []
        pos = 0
        for sm in _SENT_END_RE.finditer(line):
            pieces.append((pos, sm.start()))
            pos = sm.end()
        pieces.append((pos, len(line)))
        for ps, pe in pieces:
            # list items separated by ';' (medication lists) become their own units
            for part in re.finditer(r"[^;]+", line[ps:pe]):
                s, e = _trim(text, base + ps + part.start(), base + ps + part.end())
                if e - s < 2 or not re.search(r"[A-Za-z0-9]", text[s:e]):
                    continue
                units.append(SourceUnit(note_id, s, e, text[s:e], line_section, header, len(units)))
    return units


# ---- the aligner ---------------------------------------------------------------------


@dataclass
class Alignment:
    """The result of checking one sentence: sources, support score, verdict and why."""

    sources: list[SourceSpan]
    support: float
    supported: bool
    reasons: list[str] = field(default_factory=list)
    exact: bool = False


def _norm_ws(text: str) -> str:
    return " ".join(text.split()).lower()


class SourceIndex:
    """Source units of a set of notes with an inverted index for fast alignment."""

    def __init__(self, notes: Mapping[str, str], units: Iterable[SourceUnit] | None = None) -> None:
        self.texts: dict[str, str] = dict(notes)
        self.units: list[SourceUnit] = (
            list(units)
            if units is not None
            else [u for nid, t in self.texts.items() for u in split_units(nid, t)]
        )
        self._words: list[frozenset[str]] = []
        self._postings: dict[str, list[int]] = defaultdict(list)
        df: dict[str, int] = defaultdict(int)
        for i, u in enumerate(self.units):
            ws = frozenset(content_words(u.text))
            self._words.append(ws)
            for w in ws:
                self._postings[w].append(i)
                df[w] += 1
        n = max(1, len(self.units))
        self._idf = {w: math.log(1 + n / c) for w, c in df.items()}
        self._default_idf = math.log(1 + n)
        # lower-cased, whitespace-squeezed copies with offset maps for exact matching
        self._folded: dict[str, tuple[str, list[int]]] = {}

    def idf(self, w: str) -> float:
        return self._idf.get(w, self._default_idf)

    def _fold(self, note_id: str) -> tuple[str, list[int]]:
        if note_id not in self._folded:
            text = self.texts[note_id]
            chars: list[str] = []
            offsets: list[int] = []
            prev_space = True
            for i, ch in enumerate(text):
                if ch.isspace():
                    if prev_space:
                        continue
                    chars.append(" ")
                    prev_space = True
                else:
                    chars.append(ch.lower())
                    prev_space = False
                offsets.append(i)
            self._folded[note_id] = ("".join(chars), offsets)
        return self._folded[note_id]

    def find_exact(self, sentence: str, prefer: Iterable[str] = ()) -> SourceSpan | None:
        """The span where ``sentence`` (sans final period) occurs verbatim, latest note first."""
        full = _norm_ws(sentence)
        short = full.rstrip(" .;")
        if len(short) < 3:
            return None
        order = list(dict.fromkeys([*prefer, *reversed(list(self.texts))]))
        if full != short:
            hit = self._find_in(full, order)
            if hit is not None:
                return hit
        return self._find_in(short, order)

    def _find_in(self, needle: str, order: list[str]) -> SourceSpan | None:
        for nid in order:
            if nid not in self.texts:
                continue
            folded, offsets = self._fold(nid)
            pos = folded.find(needle)
            while pos >= 0:
                # whole-word boundaries so "10 mg" does not match inside "110 mg"
                before = folded[pos - 1] if pos > 0 else " "
                after = folded[pos + len(needle)] if pos + len(needle) < len(folded) else " "
                if not before.isalnum() and not after.isalnum():
                    start = offsets[pos]
                    end = offsets[pos + len(needle) - 1] + 1
                    return SourceSpan(nid, start, end)
                pos = folded.find(needle, pos + 1)
        return None

    def _context(self, span: SourceSpan, window: int = 3) -> str:
        """The span plus up to ``window`` words before it in the same sentence.

        A negation cue scopes over the next few words (NegEx-style window), so "No fever,
        chills" negates "chills", while "..., not in labor force (finding), full-time
        employment (finding)" does not negate the employment item later in the list.
        """
        text = self.texts[span.note_id]
        start = span.start
        while start > 0 and text[start - 1] not in ".;\n!?":
            start -= 1
        before = text[start : span.start].split()[-window:] if window else []
        return " ".join([*before, text[span.start : span.end]])

    def candidates(self, words: Iterable[str], hint_units: Iterable[int] = ()) -> dict[int, float]:
        """Units sharing words with the sentence, scored by summed idf of shared words."""
        scores: dict[int, float] = defaultdict(float)
        # sorted, not set order: float sums (and so ties) must not depend on the process's
        # string-hash seed, or the same sentence could be judged differently on each run
        for w in sorted(set(words)):
            posting = self._postings.get(w)
            if not posting or len(posting) > 5000 and len(self.units) > 20000:
                # extremely common words carry no evidence and cost time
                continue
            iw = self.idf(w)
            for i in posting:
                scores[i] += iw
        for i in hint_units:
            if 0 <= i < len(self.units):
                scores[i] += 0.01  # a cited unit wins ties
        return scores

    def align(self, sentence: str, hint_units: Iterable[int] = ()) -> Alignment:
        """Align one summary sentence to source spans and judge whether they support it."""
        hint_units = list(hint_units)
        prefer = [self.units[i].note_id for i in hint_units if 0 <= i < len(self.units)]
        exact = self.find_exact(sentence, prefer)
        words = content_words(sentence)
        if exact is not None and is_negated(sentence) == is_negated(self._context(exact)):
            return Alignment([exact], 1.0, True, [], exact=True)
        if not words:
            return Alignment([], 0.0, False, ["no content words"])
        weights = {w: self.idf(w) for w in set(words)}
        total = math.fsum(weights.values()) or 1.0  # exact: independent of set order
        scores = self.candidates(words, hint_units)
        if not scores:
            return Alignment([], 0.0, False, ["no source shares a word with this sentence"])
        # ties go to later units: units are added in note order, so a higher index is newer
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], -kv[0]))
        chosen: list[int] = []
        covered: set[str] = set()
        for i, _ in ranked[:200]:
            gain = {w for w in self._words[i] if w in weights and w not in covered}
            if not chosen:
                if not gain:
                    continue
            elif len(gain) < 2:
                continue
            chosen.append(i)
            covered |= gain
            if len(chosen) >= MAX_SPANS or len(covered) == len(weights):
                break
        if not chosen:
            return Alignment([], 0.0, False, ["no source shares a word with this sentence"])
        coverage = math.fsum(weights[w] for w in covered) / total
        src_text = " ".join(self.units[i].text for i in chosen)
        reasons = check_critical(sentence, src_text, self.units[chosen[0]].text)
        support = min(coverage, 0.4) if reasons else coverage
        supported = not reasons and coverage >= SUPPORT_THRESHOLD
        if not reasons and not supported:
            reasons.append(f"sources cover {coverage:.0%} of the sentence")
        spans = [
            SourceSpan(self.units[i].note_id, self.units[i].start, self.units[i].end)
            for i in chosen
        ]
        return Alignment(spans, max(0.0, min(1.0, support)), supported, reasons)


def check_critical(sentence: str, sources_text: str, primary_text: str) -> list[str]:
    """Reasons a sentence is unsupported by its sources' numbers, dates, drugs, negation."""
    reasons: list[str] = []
    src_numbers = set(numbers_in(sources_text))
    missing_numbers = [n for n in numbers_in(sentence) if n not in src_numbers]
    if missing_numbers:
        reasons.append("number not in sources: " + ", ".join(sorted(set(missing_numbers))))
    src_qty = quantities_in(sources_text)
    src_qty_numbers = {n for n, _u in src_qty}
    wrong_units = [
        q for q in quantities_in(sentence) if q not in src_qty and q[0] in src_qty_numbers
    ]
    if wrong_units:
        reasons.append("unit of a dose or duration differs from the sources")
    src_words = set(content_words(sources_text))
    freq = {f.lower() for f in rules().get("frequency_terms", [])}
    if any(w in freq and w not in src_words for w in content_words(sentence)):
        reasons.append("dosing frequency not in sources")
    missing_drugs = sorted(d for d in drugs_in(sentence) if d not in src_words)
    if missing_drugs:
        reasons.append("drug name not in sources")
    src_months = months_in(sources_text)
    if any(m not in src_months for m in months_in(sentence)):
        reasons.append("date not in sources")
    if is_negated(sentence) != is_negated(primary_text):
        reasons.append("negation differs from the source")
    return reasons


def align_sentence(sentence: str, notes: Mapping[str, str]) -> Alignment:
    """Convenience: align one sentence against ``{note_id: text}`` (builds a fresh index)."""
    return SourceIndex(notes).align(sentence)
