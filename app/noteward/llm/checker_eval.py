"""How well the grounding checker catches invented facts: `noteward eval checker`.

Real sentences of the shared corpora (MTS-Dialog and ACI-Bench validation notes, Synthea
FHIR notes) are changed the ways a small model gets things wrong, and each changed
sentence is aligned against the record it came from:

- ``invented_drug``: the drug of a sentence with a dose replaced by a made-up name;
- ``side_flipped``: left and right swapped;
- ``sex_flipped``: he/she, man/woman, male/female swapped (the patient's sex is known);
- ``stitched``: the first half of one note's sentence joined to the second half of a
  sentence from an unrelated note of the same record;
- ``past_as_current``: "history of X", "s/p X", "X years ago" rewritten as current.

Each kind should be flagged (target 95%); verbatim sentences should not (at most 5%).
Human reference sentences (MTS-Dialog and ACI-Bench validation notes, checked against their
dialogues) show what honest abstraction costs: at most 25% flagged, or the checker pushes
the product back to copying. Their flags are broken down by the rule that raised them (a
sentence counts under each of its reasons, and under "only" when one rule alone flagged it),
and the references are split by a hash of their id into a tuning half (read when a rule
is changed) and a report half (only ever counted), both printed.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noteward.ingest.fhir import concept_display, read_ndjson, subject_id
from noteward.llm.grounding import (
    Alignment,
    SourceIndex,
    content_words,
    context_words,
    drugs_in,
    infer_sex,
    normalize_sex,
    tokens_of,
)
from noteward.llm.lexicon import DRUG, Vocabulary, default_vocabulary, vocabulary_from_names

KINDS = ("invented_drug", "side_flipped", "sex_flipped", "stitched", "past_as_current")
TARGET_FLAGGED = 0.95
TARGET_VERBATIM = 0.05
TARGET_HUMAN = 0.25


@dataclass
class _Record:
    """One patient's (or one pool's) notes, as the checker would see them in a vault."""

    source: str  # corpus name
    notes: dict[str, str]
    sex: dict[str, str | None]  # per note: the patient's sex (pools mix patients)
    vocabulary: Vocabulary | None = None
    _index: SourceIndex | None = None

    def index(self) -> SourceIndex:
        if self._index is None:
            self._index = SourceIndex(self.notes, vocabulary=self.vocabulary)
        return self._index


@dataclass
class _Case:
    kind: str
    record: _Record
    text: str
    sex: str | None


def reason_category(reason: str) -> str:
    """A checker reason without its details ("number not in sources: 39" -> "number not in
    sources"), so flags can be counted by the rule that raised them."""
    if reason.startswith("sources cover"):
        return "sources cover too little"
    return re.split(r"[:(]", reason, maxsplit=1)[0].strip()


@dataclass
class Rate:
    """Flagged count and total of one row of the report, with the flags by reason."""

    n: int = 0
    flagged: int = 0
    examples: list[tuple[str, list[str]]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)  # flags per rule (all reasons)
    only: Counter[str] = field(default_factory=Counter)  # flags where that rule was alone

    @property
    def share(self) -> float:
        return self.flagged / self.n if self.n else 0.0

    def add(self, al: Alignment) -> None:
        """Count one checked sentence."""
        self.n += 1
        if al.supported:
            return
        self.flagged += 1
        cats = set(map(reason_category, al.reasons)) or {"unsupported"}
        self.reasons.update(cats)
        if len(cats) == 1:
            self.only.update(cats)


@dataclass
class CheckerReport:
    """Rates per perturbation kind, for verbatim sentences and for human references."""

    kinds: dict[str, Rate]
    verbatim: Rate
    human: dict[str, Rate]
    ms_per_sentence: float
    sentences_timed: int
    # per corpus: the "tune" and "report" halves of its references (by a hash of the id)
    human_halves: dict[str, dict[str, Rate]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def row(r: Rate) -> dict[str, Any]:
            return {"n": r.n, "flagged": r.flagged, "share": round(r.share, 4)}

        def human_row(corpus: str, r: Rate) -> dict[str, Any]:
            halves = self.human_halves.get(corpus, {})
            return {
                **row(r),
                "reasons": dict(r.reasons.most_common()),
                "only": dict(r.only.most_common()),
                "halves": {h: row(hr) for h, hr in halves.items()},
            }

        return {
            "kinds": {k: row(r) for k, r in self.kinds.items()},
            "verbatim": row(self.verbatim),
            "human_reference": {k: human_row(k, r) for k, r in self.human.items()},
            "ms_per_sentence": round(self.ms_per_sentence, 3),
            "sentences_timed": self.sentences_timed,
            "targets": {
                "kinds": TARGET_FLAGGED,
                "verbatim": TARGET_VERBATIM,
                "human": TARGET_HUMAN,
            },
        }

    def lines(self) -> list[str]:
        out = [f"{'row':44} {'n':>6} {'flagged':>8} {'share':>7}  target"]
        for k, r in self.kinds.items():
            out.append(f"{'perturbed: ' + k:44} {r.n:>6} {r.flagged:>8} {r.share:>7.1%}  >= 95%")
        r = self.verbatim
        out.append(
            f"{'verbatim source sentences':44} {r.n:>6} {r.flagged:>8} {r.share:>7.1%}  <= 5%"
        )
        for k, r in self.human.items():
            out.append(
                f"{'human reference: ' + k:44} {r.n:>6} {r.flagged:>8} {r.share:>7.1%}  <= 25%"
            )
            for half, hr in self.human_halves.get(k, {}).items():
                label = f"human reference: {k} ({half} half)"
                out.append(f"{label:44} {hr.n:>6} {hr.flagged:>8} {hr.share:>7.1%}")
        out.append(
            f"checker time: {self.ms_per_sentence:.2f} ms per sentence "
            f"({self.sentences_timed} sentences, index build excluded)"
        )
        for k, r in self.human.items():
            out.append(
                f"why flagged, human reference: {k} ({r.flagged} of {r.n}; a sentence "
                "counts under each of its reasons)"
            )
            out.append(f"  {'reason':52} {'flags':>6} {'only':>6}")
            for reason, count in r.reasons.most_common():
                out.append(f"  {reason:52} {count:>6} {r.only.get(reason, 0):>6}")
        return out


# ---- corpora -------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_INLINE_HEADER = re.compile(r"^[A-Z][A-Za-z/&]*(?:\s(?:[A-Z][A-Za-z/&]*|and|of)){0,4}:\s+(?=\S)")
_HEADER_LINE = re.compile(r"^\s*(?:#+\s*)?[A-Z][A-Z /&\-]{2,60}:?\s*$")


def note_sentences(text: str) -> list[str]:
    """Sentences of a note: lines split at sentence ends; headers and fragments dropped."""
    out = []
    for line in text.splitlines():
        if not line.strip() or _HEADER_LINE.match(line):
            continue
        line = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s+", "", line).strip()
        # an inline header ("Musculoskeletal: ...", "Medical Treatment: ...") is structure
        line = _INLINE_HEADER.sub("", line)
        for s in _SENT_RE.split(line):
            s = s.strip()
            if len(content_words(s)) >= 3 and len(s) <= 400:
                out.append(s)
    return out


def _mts_records(data: Path, pool: int = 10) -> list[_Record]:
    rows = _read_csv(data / "mts_dialog" / "MTS-Dialog-ValidationSet.csv")
    recs = []
    for k in range(0, len(rows), pool):
        group = rows[k : k + pool]
        notes = {f"mts{r['ID']}": r["section_text"] for r in group}
        recs.append(_Record("mts_dialog", notes, {n: infer_sex(t) for n, t in notes.items()}))
    return recs


def _aci_meta(data: Path, split: str = "valid") -> dict[str, str | None]:
    path = data / "aci_bench" / f"{split}_metadata.csv"
    if not path.exists():
        return {}
    return {r["encounter_id"]: normalize_sex(r.get("patient_gender")) for r in _read_csv(path)}


def _aci_records(data: Path, pool: int = 4) -> list[_Record]:
    rows = _read_csv(data / "aci_bench" / "valid.csv")
    meta = _aci_meta(data)
    recs = []
    for k in range(0, len(rows), pool):
        group = rows[k : k + pool]
        notes = {f"aci{r['encounter_id']}": r["note"] for r in group}
        sex = {f"aci{r['encounter_id']}": meta.get(r["encounter_id"]) for r in group}
        recs.append(_Record("aci_bench", notes, sex))
    return recs


def _synthea_records(data: Path, max_notes: int = 60) -> list[_Record]:
    """One record per Synthea patient (its latest ``max_notes`` notes), with the patient's
    sex and a vocabulary that adds its own FHIR medication, condition and procedure names,
    as the app builds it from the vault."""
    folder = data / "synthea_fhir"
    sex = {
        str(r["id"]): normalize_sex(r.get("gender"))
        for r in read_ndjson(folder / "Patient.000.ndjson")
    }
    meds: dict[str, list[str]] = {p: [] for p in sex}
    conds: dict[str, list[str]] = {p: [] for p in sex}
    for r in read_ndjson(folder / "MedicationRequest.000.ndjson"):
        meds.setdefault(subject_id(r), []).append(
            concept_display(r.get("medicationCodeableConcept"))
        )
    for name in ("Condition", "Procedure"):
        for r in read_ndjson(folder / f"{name}.000.ndjson"):
            conds.setdefault(subject_id(r), []).append(concept_display(r.get("code")))
    notes: dict[str, list[tuple[str, str, str]]] = {p: [] for p in sex}
    for r in read_ndjson(folder / "DocumentReference.000.ndjson"):
        for content in r.get("content", []):
            att = content.get("attachment", {})
            if str(att.get("contentType", "")).startswith("text/plain") and att.get("data"):
                text = base64.b64decode(att["data"]).decode("utf-8", errors="replace")
                notes.setdefault(subject_id(r), []).append(
                    (str(r.get("date", "")), str(r["id"]), text)
                )
                break
    recs = []
    for pid in sorted(notes):
        latest = sorted(notes[pid])[-max_notes:]
        if not latest:
            continue
        vocab = vocabulary_from_names(meds.get(pid, []), conds.get(pid, []))
        texts = {nid: text for _d, nid, text in latest}
        recs.append(_Record("synthea", texts, dict.fromkeys(texts, sex.get(pid)), vocab))
    return recs


# ---- perturbations -------------------------------------------------------------------

_SYLLABLES = ("ni", "tro", "zal", "vex", "cor", "pra", "lin", "dox", "mar", "qui", "tel", "sor",
              "bra", "fen", "lux", "tri", "zan", "ova", "pel", "dri", "kal", "mes")  # fmt: skip
_ENDINGS = ("ex", "an", "ol", "ine", "ate", "ide", "or", "il", "ax", "um", "en", "ora")
_DOSE_RE = re.compile(r"\d+(?:\.\d+)?\s*(?:mg|mcg|g|ml|units?|unt|iu|%)\b", re.IGNORECASE)
_SIDE_SWAP = {"left": "right", "right": "left", "bilateral": "left", "bilaterally": "on the left"}
_SEX_SWAP = {
    "he": "she", "she": "he", "him": "her", "his": "her", "her": "his", "hers": "his",
    "himself": "herself", "herself": "himself", "man": "woman", "woman": "man",
    "male": "female", "female": "male", "gentleman": "lady", "lady": "gentleman",
    "boy": "girl", "girl": "boy", "mr": "mrs", "mrs": "mr", "ms": "mr", "sir": "ma'am",
    "men": "women", "women": "men",
}  # fmt: skip
_PAST_REWRITES: tuple[tuple[str, str], ...] = (
    (r"\bhas (?:a )?(?:past )?(?:medical )?history of\b", "currently has"),
    (r"\b(?:a )?(?:past )?(?:medical )?history (?:significant )?(?:of|for)\b", "current"),
    (r"\bh/o\b", "current"),
    (r"\bhx of\b", "current"),
    (r"\bis s/p\b|\bis status post\b", "presents with"),
    (r"\bs/p\b|\bstatus post\b", "presenting with"),
    (r"\bpreviously\b", "currently"),
    (r"\b(?:previous|prior|former)\b", "current"),
    (r"\bresolved\b", "active"),
    (r"\b(?:\w+ )?(?:years?|months?|weeks?|days?) ago\b", "now"),
    (r"\bin (?:19|20)\d\d\b", "now"),
    (r"\bused to\b", "currently"),
)


def _case_preserving(word: str, new: str) -> str:
    if word.isupper() and len(word) > 1:
        return new.upper()
    if word[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _swap_words(s: str, table: dict[str, str]) -> str | None:
    pattern = re.compile(
        r"(?<![A-Za-z'])("
        + "|".join(sorted(map(re.escape, table), key=len, reverse=True))
        + r")(?![A-Za-z'])",
        re.IGNORECASE,
    )
    out = pattern.sub(lambda m: _case_preserving(m.group(0), table[m.group(0).lower()]), s)
    return out if out != s else None


def invent_drug_name(rng: random.Random, vocab: Vocabulary) -> str:
    """A made-up drug name no lexicon or dictionary knows ("Zalvexora")."""
    while True:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))) + rng.choice(
            _ENDINGS
        )
        if vocab.english.get(name, 0.0) == 0.0 and name not in vocab.drugs:
            return name.capitalize()


def perturb_invented_drug(s: str, rng: random.Random, vocab: Vocabulary) -> str | None:
    if not _DOSE_RE.search(s):
        return None
    drugs = [t for t in re.findall(r"[A-Za-z]+", s) if vocab.kind(t.lower()) == DRUG or drugs_in(t)]
    if not drugs:
        return None
    d = rng.choice(drugs)
    return re.sub(r"\b" + re.escape(d) + r"\b", invent_drug_name(rng, vocab), s, count=1)


def perturb_side(s: str) -> str | None:
    return _swap_words(s, _SIDE_SWAP)


def perturb_sex(s: str) -> str | None:
    pw = context_words()
    toks = tokens_of(s)
    if any(t in pw.relatives or t in pw.relative_sex for t in toks):
        return None  # "her husband ... he": a pronoun may speak of someone else
    return _swap_words(s, _SEX_SWAP)


def perturb_past(s: str) -> str | None:
    pw = context_words()
    if not pw.historical.search(s.lower()):
        return None
    for pat, rep in _PAST_REWRITES:
        if re.search(pat, s, flags=re.IGNORECASE):
            out = re.sub(pat, rep, s, count=1, flags=re.IGNORECASE)
            if pw.historical.search(out.lower()) is None:
                return out
            return None
    return None


def _content_split(s: str, first: bool) -> tuple[str, set[str]]:
    """The half of a sentence (cut between words) holding the first or last half of its
    content words, and those words."""
    words = s.split()
    counts = [len(content_words(w)) for w in words]
    half = sum(counts) / 2
    run, cut = 0, len(words)
    for i, c in enumerate(counts):
        run += c
        if run >= half:
            cut = i + 1
            break
    part = words[:cut] if first else words[cut:]
    return " ".join(part), set(content_words(" ".join(part)))


def stitch(a: str, b: str) -> str:
    """The first half of ``a``'s content followed by the second half of ``b``'s."""
    return f"{_content_split(a, True)[0]} {_content_split(b, False)[0]}".strip()


# ---- the report ----------------------------------------------------------------------


HumanCase = tuple[SourceIndex, str, "str | None", str]


def reference_half(corpus: str, ref_id: str) -> str:
    """ "tune" or "report": a fixed half of a corpus's references by a hash of its id (all
    sentences of one reference fall in the same half)."""
    digest = hashlib.sha256(f"{corpus}:{ref_id}".encode()).digest()
    return "tune" if digest[0] % 2 == 0 else "report"


def _human_cases(data: Path, split: str = "valid") -> dict[str, list[HumanCase]]:
    """Reference sentences with the dialogue they were written from, the patient's sex
    (ACI-Bench metadata; for MTS-Dialog, which has none, the reference note's own words)
    and the reference's id. ``split``: "valid" (what the report states) or "train"."""
    out: dict[str, list[HumanCase]] = {"mts_dialog": [], "aci_bench": []}
    mts = "MTS-Dialog-ValidationSet.csv" if split == "valid" else "MTS-Dialog-TrainingSet.csv"
    for r in _read_csv(data / "mts_dialog" / mts):
        index = SourceIndex({"dialogue": r["dialogue"]})
        sex = infer_sex(r["section_text"])
        out["mts_dialog"] += [(index, s, sex, r["ID"]) for s in note_sentences(r["section_text"])]
    meta = _aci_meta(data, split)
    for r in _read_csv(data / "aci_bench" / f"{split}.csv"):
        index = SourceIndex({"dialogue": r["dialogue"]})
        sex = meta.get(r["encounter_id"])
        out["aci_bench"] += [(index, s, sex, r["encounter_id"]) for s in note_sentences(r["note"])]
    return out


def grounding_report(
    data_dir: Path | None = None,
    per_kind: int = 200,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
    keep_examples: int = 0,
) -> CheckerReport:
    """Flag rates of the checker on perturbed, verbatim and human reference sentences.

    ``per_kind`` caps each row's sample (a fixed-size seeded sample, so runs compare);
    human references are all taken. ``keep_examples``: misjudged sentences kept per row
    (perturbations passed, verbatim or human sentences flagged), for reading.
    """
    from noteward.settings import shared_data_dir

    data = data_dir or shared_data_dir()
    say = progress or (lambda _m: None)
    rng = random.Random(seed)
    vocab = default_vocabulary()
    say("reading corpora")
    records = _mts_records(data) + _aci_records(data) + _synthea_records(data)
    cases: dict[str, list[_Case]] = {k: [] for k in ("verbatim", *KINDS)}
    for rec in records:
        sents = [(nid, s) for nid, text in rec.notes.items() for s in note_sentences(text)]
        seen: set[str] = set()
        for nid, s in sents:
            if s in seen:
                continue  # Synthea repeats its templates in every note
            seen.add(s)
            sex = rec.sex.get(nid)
            cases["verbatim"].append(_Case("verbatim", rec, s, sex))
            for kind, p in (
                ("invented_drug", perturb_invented_drug(s, rng, rec.vocabulary or vocab)),
                ("side_flipped", perturb_side(s)),
                ("sex_flipped", perturb_sex(s) if sex else None),
                ("past_as_current", perturb_past(s)),
            ):
                if p and p != s:
                    cases[kind].append(_Case(kind, rec, p, sex))
        cases["stitched"] += _stitched_cases(rec, sents, rng)
    sample = {k: _sample(v, per_kind, rng) for k, v in cases.items()}
    timer = [0.0, 0]

    def flagged(
        index: SourceIndex, text: str, sex: str | None, rate: Rate, want: bool
    ) -> Alignment:
        t0 = time.perf_counter()
        al = index.align(text, patient_sex=sex)
        timer[0] += time.perf_counter() - t0
        timer[1] += 1
        rate.add(al)
        if al.supported == want and len(rate.examples) < keep_examples:
            rate.examples.append((text, al.reasons))  # a miss: kept to read, never logged
        return al

    kinds: dict[str, Rate] = {}
    for kind in KINDS:
        say(f"checking {kind}")
        rate = kinds[kind] = Rate()
        for c in sample[kind]:
            c.record.index()  # built outside the timer: the app builds it once per summary
            flagged(c.record.index(), c.text, c.sex, rate, True)
    verbatim = Rate()
    say("checking verbatim sentences")
    for c in sample["verbatim"]:
        c.record.index()
        flagged(c.record.index(), c.text, c.sex, verbatim, False)
    human: dict[str, Rate] = {}
    halves: dict[str, dict[str, Rate]] = {}
    for corpus, items in _human_cases(data).items():
        say(f"checking human references: {corpus}")
        rate = human[corpus] = Rate()
        halves[corpus] = {"tune": Rate(), "report": Rate()}
        for index, text, sex, ref_id in items:
            al = flagged(index, text, sex, rate, False)
            halves[corpus][reference_half(corpus, ref_id)].add(al)
    ms = 1000.0 * timer[0] / max(1, int(timer[1]))
    return CheckerReport(kinds, verbatim, human, ms, int(timer[1]), halves)


def _sample(cases: list[_Case], n: int, rng: random.Random) -> list[_Case]:
    """A seeded sample spread over the corpora (each gets its share of ``n``)."""
    by_source: dict[str, list[_Case]] = {}
    for c in cases:
        by_source.setdefault(c.record.source, []).append(c)
    out: list[_Case] = []
    sources = sorted(by_source)
    for i, src in enumerate(sources):
        pool = by_source[src]
        want = (n - len(out)) // (len(sources) - i)
        out += rng.sample(pool, min(want, len(pool)))
    return out


def _is_fact(word: str, vocab: Vocabulary) -> bool:
    return word[:1].isdigit() or vocab.kind(word) is not None


def _stitched_cases(rec: _Record, sents: list[tuple[str, str]], rng: random.Random) -> list[_Case]:
    """Halves of sentences from two different notes of the record whose content words the
    other note does not hold (unrelated sources), joined into one sentence."""
    if len(rec.notes) < 2:
        return []
    vocab = rec.vocabulary or default_vocabulary()
    words = {nid: set(content_words(t)) for nid, t in rec.notes.items()}
    long = [(nid, s) for nid, s in sents if len(content_words(s)) >= 8]
    out = []
    for nid, a in long:
        for _ in range(5):
            nid_b, b = rng.choice(long)
            if nid_b == nid:
                continue
            half_a = _content_split(a, True)[1]
            half_b = _content_split(b, False)[1]
            # each half brings its own facts: most of its words are not in the other note
            if len(half_a - words[nid_b]) < 3 or len(half_b - words[nid]) < 3:
                continue
            if (
                len(half_b & words[nid]) > len(half_b) / 3
                or len(half_a & words[nid_b]) > len(half_a) / 3
            ):
                continue
            # each half carries a fact (drug, condition, body site, unknown word, number) the
            # other note lacks: a stitch of wording alone invents nothing
            if not any(_is_fact(w, vocab) for w in half_a - words[nid_b]) or not any(
                _is_fact(w, vocab) for w in half_b - words[nid]
            ):
                continue
            # unrelated: no note of the record holds most of the stitched sentence
            both = half_a | half_b
            if any(len(both & ws) >= 0.7 * len(both) for ws in words.values()):
                continue
            out.append(_Case("stitched", rec, stitch(a, b), rec.sex.get(nid)))
            break
    return out


__all__ = [
    "KINDS",
    "CheckerReport",
    "Rate",
    "grounding_report",
    "note_sentences",
    "reason_category",
    "reference_half",
]
