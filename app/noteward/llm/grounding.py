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
4. Then the facts only a vocabulary can see (:mod:`noteward.llm.lexicon`): every drug,
   condition, procedure or body-site word, and every word general English does not know
   (a possible drug), must be found in the sources (itself, a derivation, or a lay synonym;
   a further unit of a cited note that holds it and shares the sentence's words is added
   as a source); a side (left/right/bilateral) must be in the cited spans; a relative
   (son, wife ...) must be in the sources, and he/she/man/woman must agree with the
   patient's sex (given, else read from the cited notes). A sentence is also unsupported
   when no single note covers most of it (stitched from unrelated notes) and when it states
   as current what its source calls past ("history of", "s/p", "resolved", "years ago").

``support`` is the share of what the sentence says that its cited sources hold (each word
weighed by its information in general English, so rewording with everyday words costs
little), capped below the threshold when a check fails, so it stays a score in [0, 1].
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
from noteward.llm.lexicon import (
    CLINICAL,
    DRUG,
    UNKNOWN,
    Vocabulary,
    clinical_terms,
    default_vocabulary,
    information,
    is_plain_english,
    stem,
    zipf,
)
from noteward.llm.prompts import resources_dir

# every fact word has its own check; coverage only asks that a good part of the rest be
# in the sources. Chosen on the MTS-Dialog and ACI-Bench training references (0.3 keeps
# paraphrase such as "stung approximately one month ago" for "stung about a month ago")
SUPPORT_THRESHOLD = 0.3
# the support of a sentence some check flags stays below the threshold
FLAGGED_SUPPORT_CAP = 0.25
MAX_SPANS = 3
# a fact word found only outside the chosen spans may add this many further spans
MAX_EXTRA_SPANS = 3
# "no single source covers most of its content words": the best note's weighted share
STITCH_MIN_COVERAGE = 0.7
# ... while one unit of another note holds at least this share of the rest
STITCH_OTHER_COVERAGE = 0.2
# ... or covers less than this and another note's unit holds two of its missing facts
STITCH_FACT_COVERAGE = 0.9

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


@lru_cache(maxsize=65536)
def normalize_word(w: str) -> str:
    """Lower-case; numbers lose thousands separators; crude plural folding for words."""
    w = w.lower()
    # a possessive is its noun ("Hodgkin's" -> "hodgkin", "dad's" -> "dad")
    if w.endswith("'s") and len(w) > 3:
        w = w[:-2]
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


# closed-class words (pronouns, auxiliaries, determiners, conjunctions, negation words) and
# the fillers of a transcript: they state no fact, so rewording them is neither missing
# content nor a flipped negation ("we discussed" vs "why don't we"). Kept out of coverage
# and of the negation comparison only; content_words keeps them for its other callers.
_FUNCTION_WORDS = frozenset(
    form
    for w in """i me my mine myself we us our ours ourselves you your yours yourself yourselves
    they'll it itself what which whose this that these those am do does did doing done will
    would shall should can could may might must not no nor yes if so but because until while
    when where why how all any both each some such only own same too very just up down out
    off again once here there then than um uh uhm hmm mhm okay ok yeah yep yup alright oh ah
    gonna na let let's i'm i've i'd i'll you're you've we're we'll it's that's there's don't
    didn't doesn't haven't hasn't isn't wasn't can't won't get got getting go going goes
    went gone thing things lot bit kind sort really actually like something anything
    nothing everything""".split()
    for form in (w, normalize_word(w))
)


def checked_words(text: str) -> list[str]:
    """The content words a checker weighs: :func:`content_words` less closed-class words."""
    return [w for w in content_words(text) if w not in _FUNCTION_WORDS]


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
_DOSE_UNITS = frozenset({"mg", "mcg", "g", "ml", "l", "unit", "%"})
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


NEGATION_WINDOW = 4  # words a cue scopes over (NegEx-style)
# the start of a dialogue turn: spaces and an optional speaker label ("[doctor]", "Patient:")
_TURN_START = r"\s*(?:\[?\w+\]?:?\s*)?"
_NEG_ANSWER_RE = re.compile(
    "^" + _TURN_START + r"(?:no|nope|nah|not|never|none|negative|denies|i don'?t|i do not|"
    r"i have ?n'?t|i haven'?t|i have not|i did ?n'?t|i didn'?t|i did not)\b",
    re.IGNORECASE,
)


_YES_ANSWER_RE = re.compile(
    "^" + _TURN_START + r"(?:yes|yeah|yep|yup|correct|right|sure|i do|i have|i did|uh-huh|mm-hmm)\b",
    re.IGNORECASE,
)


# transcripts often drop the question mark: "[doctor] have you had any numbness"
_QUESTION_RE = re.compile(
    r"\?\s*$|\b(?:do|did|does|have|are|were|can|could|would)\s+(?:you|anyone|anybody)\b"
    # a doctor's turn that runs through symptoms: "[doctor] okay any joint pain fever"
    r"|^\s*(?:\[doctor\]|doctor:).*\b(?:any|how about|what about)\s+\w+[\s\w,]*$",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """A dialogue turn that asks rather than states (a question asserts nothing)."""
    return _QUESTION_RE.search(text) is not None


# where a negation's scope ends (NegEx-style terminators): a new clause ("... and has
# lost 8 pounds", "... until she noticed", "... which", "but")
_SCOPE_END_RE = re.compile(
    r"[.;:!?]|\b(?:but|however|although|though|except|yet|until|when|which|who|whereas|"
    r"because)\b|\band (?:is|are|was|were|has|have|had|reports?|states?|says?|notes?|"
    r"denies|describes?|feels?|takes?|does|did)\b",
    re.IGNORECASE,
)


def negated_words(text: str, window: int | None = NEGATION_WINDOW) -> set[str]:
    """Content words within ``window`` words after a negation cue (None: to the clause's
    end), never past a terminator ("but", "until", "and has ...")."""
    _, _, _, neg = _lexicons()
    out: set[str] = set()
    for m in neg.finditer(text):
        tail = _SCOPE_END_RE.split(text[m.end() :], maxsplit=1)[0]
        out.update(content_words(" ".join(tail.split()[:window])))
    return out


_ASKING_RE = re.compile(
    r"\b(?:do|did|does|have|are|were|can|could|would|any|is there|how about|what about)\b",
    re.IGNORECASE,
)


def question_part(text: str) -> str:
    """The question a turn ends with: its last sentence, or in an unpunctuated transcript
    turn the words from its last asking phrase ("... so do you have any numbness"). A "no"
    answers that question, not everything the turn said before it."""
    parts = [p for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p.strip()]
    last = parts[-1] if parts else text
    if len(last.split()) <= 25:
        return last
    asks = list(_ASKING_RE.finditer(last))
    return last[asks[-1].start() :] if asks else last


# "I don't know", "I don't remember what month, but ...": no answer, not a denial
_UNSURE_ANSWER_RE = re.compile(
    "^" + _TURN_START + r"(?:i|we)\s+(?:do n'?t|don'?t|do not|did n'?t|didn'?t|did not)\s+"
    r"(?:know|remember|recall|understand)\b",
    re.IGNORECASE,
)
# a turn's leading "No," answers the question before it (read through answered_no); it
# does not negate what the turn goes on to say ("No, I'm happily single right now")
_LEADING_NO_RE = re.compile(
    "^(" + _TURN_START + r")(?:no|nope|nah)(?:\s+(?:sir|ma'?am|doctor|doc))?\s*[,.!;]",
    re.IGNORECASE,
)


def is_negative_answer(text: str) -> bool:
    """A dialogue turn that answers no ("Patient: No.", "[patient] nope , not really");
    not one that does not know ("I don't remember what month")."""
    return _NEG_ANSWER_RE.match(text) is not None and _UNSURE_ANSWER_RE.match(text) is None


def _past_leading_no(text: str) -> str:
    """A turn without its leading answer word ("No, I'm single" -> "I'm single")."""
    m = _LEADING_NO_RE.match(text)
    return m.group(1) + text[m.end() :] if m else text


# a word rarer than this in general English can state a finding ("chills" 3.4, "normal"
# 5.0); the commonest words ("year" 6.0, "family" 5.7, "help" 5.8) are compared for
# negation only when the vocabulary names them a fact ("pain", "knee")
FINDING_MAX_ZIPF = 5.2


def is_finding(word: str, vocabulary: Vocabulary | None = None) -> bool:
    """Whether a normalized word can state a finding whose negation matters: a drug,
    condition, procedure, body site or unknown word, or a rare English word. Sides and
    note wording are not (a side has its own check)."""
    if not word[:1].isalpha() or word in _FUNCTION_WORDS or word in _note_wording():
        return False
    if word in context_words().sides:
        return False
    vocab = vocabulary or default_vocabulary()
    if vocab.kind(word) is not None:
        return True
    # words reach here plural-folded: "chills" (3.4) is a finding, "chill" (4.4) is not
    return min(zipf(word), zipf(word + "s") or zipf(word)) < FINDING_MAX_ZIPF


def negation_differs(
    sentence: str,
    sources: Iterable[str],
    answered_no: Iterable[str] = (),
    vocabulary: Vocabulary | None = None,
) -> bool:
    """Whether the sentence negates a finding its sources state, or states one they negate.

    Compared word by word within each cue's scope, so "No fever, chills" negates "chills"
    but not a later "full-time employment", and a source that both states and negates a
    word (different units) supports either polarity. Only words that can state a finding
    are compared (:func:`is_finding`): "we discussed" is not contradicted by "why don't we".
    ``answered_no``: dialogue questions the next turn answers "no" to.
    """
    # a summary sentence's cue covers its whole clause ("denies loss of bowel or bladder
    # control"); a source's only a few words, as NegEx reads notes
    s_neg = {w for w in negated_words(sentence, None) if is_finding(w, vocabulary)}
    s_pos = {w for w in content_words(sentence) if is_finding(w, vocabulary)} - s_neg
    src_neg: set[str] = set()
    src_pos: set[str] = set()
    # the sentence's own reading of a source's negation (to the clause's end): a word the
    # sentence negates is supported when a source negates it anywhere in its clause ("I
    # don't need anything for the cough")
    src_neg_clause: set[str] = set()
    for text in answered_no:  # "Any neck pain?" - "No.": every word of the question is denied
        src_neg |= set(content_words(text))
    for text in sources:
        said = _past_leading_no(text)
        n = negated_words(said)
        src_neg |= n
        src_pos |= set(content_words(text)) - n
        src_neg_clause |= negated_words(said, None)
    return bool((s_neg & src_pos) - src_neg - src_neg_clause) or bool((s_pos & src_neg) - src_pos)


_SMALL = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_SMALL |= {"a": 1, "an": 1, "half": 0}
_ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
            "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
            "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
            "thirtieth": 30}  # fmt: skip
_TENS = {
    w: 10 * (i + 2)
    for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_DECADES = {
    w: 10 * (i + 2)
    for i, w in enumerate(
        "twenties thirties forties fifties sixties seventies eighties nineties".split()
    )
}
_MONTH_NUMBER = {
    m: i + 1
    for i, m in enumerate(
        "january february march april may june july august september october november december".split()
    )
}


def spelled_numbers(text: str) -> set[str]:
    """Numbers written as words ("twenty six", "two thousand five", "fifteenth", "three
    point one") and month names as numbers: a dialogue says what the note writes in
    digits."""
    out: set[str] = set()
    total, cur, open_ = 0, 0, False
    point: tuple[int, str] | None = None  # "three point" and the decimal digits read so far

    def flush() -> None:
        nonlocal total, cur, open_
        if open_:
            out.add(str(total + cur))
        total, cur, open_ = 0, 0, False

    def end_point() -> None:
        nonlocal point
        if point is not None and point[1]:
            value = normalize_word(f"{point[0]}.{point[1]}")
            out.update({value, value.lstrip("0") or "0"})
        point = None

    prev = ""
    for tok in re.findall(r"[a-z]+", text.lower()):
        digit = _SMALL.get(tok) if tok not in ("a", "an", "half") else None
        if digit is not None and digit < 10 and prev in ("o", "oh"):
            out.add(f"200{digit}")  # "October O eight": 2008
        if tok in _DECADES:
            # "in the seventies", "in her fifties": 70, 1970, 50, 1950
            out.update({str(_DECADES[tok]), str(1900 + _DECADES[tok])})
        prev = tok
        if point is not None:
            if digit is not None and digit < 10:
                point = (point[0], point[1] + str(digit))
                continue
            end_point()
        if tok == "point":
            # "three point one"; "a point six" is 0.6
            point = (total + cur if open_ else 0, "")
            flush()
            continue
        if tok in _MONTH_NUMBER:
            out.add(str(_MONTH_NUMBER[tok]))
        if tok in _TENS or (tok in _SMALL and tok not in ("a", "an", "half")) or tok in _ORDINAL:
            v = _TENS.get(tok, _SMALL.get(tok, _ORDINAL.get(tok, 0)))
            if open_ and cur >= 100 and cur % 100 == 0 and v < 100:
                cur += v  # one hundred and twenty
            elif open_ and cur % 10 == 0 and cur >= 20 and v < 10:
                cur += v  # twenty six
            elif open_ and 0 < cur < 100 and total == 0 and v >= 10:
                cur = cur * 100 + v  # nineteen eighty
            elif open_ and cur == 0:
                cur = v  # two thousand five
            elif open_:
                flush()
                cur, open_ = v, True
            else:
                cur, open_ = v, True
            if tok in _ORDINAL and tok not in _TENS:
                flush()
        elif tok == "hundred" and open_:
            cur *= 100
        elif tok == "thousand" and open_:
            total, cur = total + cur * 1000, 0
        elif tok == "and" and open_:
            continue
        else:
            flush()
    flush()
    end_point()
    return out


def _with_short_years(numbers: set[str]) -> set[str]:
    """The numbers plus the two-digit form of each year (2008 -> "8"), as dates write it
    ("01/18/08")."""
    years = {n[2:].lstrip("0") or "0" for n in numbers if re.fullmatch(r"(?:19|20)\d\d", n)}
    return numbers | years


_SPELLED_ACRONYM_RE = re.compile(r"(?<![A-Za-z])((?:[A-Z] ){1,5}[A-Z])(s?)(?![A-Za-z])")


def acronyms(text: str) -> set[str]:
    """Acronyms a transcript spells out letter by letter ("M R I", "U T Is" -> "mri",
    "uti"): the dialogue says what the note abbreviates."""
    return {
        normalize_word(m.group(1).replace(" ", "") + m.group(2))
        for m in _SPELLED_ACRONYM_RE.finditer(text)
    }


# ---- facts a vocabulary sees: sides, persons, past vs current --------------------------

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
MALE = "male"
FEMALE = "female"


@dataclass(frozen=True)
class _PersonWords:
    male: frozenset[str]
    female: frozenset[str]
    relatives: dict[str, frozenset[str]]  # a relative word -> source words that support it
    relative_sex: dict[str, str]
    sides: frozenset[str]
    lay: dict[str, tuple[str, ...]]  # a folded clinical word -> everyday words that support it
    historical: re.Pattern[str]
    current: re.Pattern[str]


def _cue_pattern(cues: Iterable[str]) -> re.Pattern[str]:
    alts = sorted((re.escape(c.lower()) for c in cues), key=len, reverse=True)
    return re.compile(r"(?<![a-z])(?:" + "|".join(alts) + r")(?![a-z])")


@lru_cache(maxsize=1)
def context_words() -> _PersonWords:
    """Sides, person words, lay synonyms and past/current cues from clinical_terms.json."""
    t = clinical_terms()
    relatives: dict[str, set[str]] = defaultdict(set)
    for key, words in t["relatives"].items():
        relatives[key] |= set(words) | {key}
        for w in words:
            if w not in t["relatives"]:
                relatives[w] |= set(words) | {key}
    relative_sex = {w: sex for sex, words in t["relative_sex"].items() for w in words}
    lay = {
        normalize_word(k): tuple(v) for k, v in t["lay_synonyms"].items() if not k.startswith("_")
    }
    years = r"|(?<![0-9])(?:19|20)[0-9]{2}(?![0-9])"
    hist = _cue_pattern(t["historical_cues"])
    return _PersonWords(
        frozenset(t["patient_male"]),
        frozenset(t["patient_female"]),
        {k: frozenset(v) for k, v in relatives.items()},
        relative_sex,
        frozenset(t["sides"]),
        lay,
        re.compile(hist.pattern + years),
        _cue_pattern(t["current_cues"]),
    )


@lru_cache(maxsize=1)
def _note_wording() -> frozenset[str]:
    """Words a note adds around its facts ("patient", "reports", "today"): they do not
    count toward coverage, so rewording a source is not mistaken for inventing."""
    return frozenset(normalize_word(w) for w in clinical_terms()["note_wording"])


# "right" that is no side: "right now", "right here", "all right", "..., right?"
_RIGHT_NOT_SIDE_RE = re.compile(
    r"(?<![a-z])(?:all right|alright)(?![a-z])|(?<![a-z])right(?=\s*(?:now|here|there|away|"
    r"then|after|before|okay|ok)(?![a-z])|\s*[?])",
)


def side_words(text: str) -> list[str]:
    """The side words of a text (left, right, bilateral ...), less "right" said as an
    adverb or a question tag ("right now", "all right", "..., right?")."""
    low = _RIGHT_NOT_SIDE_RE.sub(" ", text.lower())
    sides = context_words().sides
    return [t for t in tokens_of(low) if t in sides]


_OPPOSITE_SIDE = {"left": "right", "right": "left", "lt": "rt", "rt": "lt"}
SIDE_SITE_WINDOW = 3  # words from a side to the body site it names ("right great toe")


def side_sites(text: str) -> set[tuple[str, str]]:
    """(side, body site) pairs a text names: "right great toe" -> ("right", "toe"), the site
    the first body-site word within :data:`SIDE_SITE_WINDOW` words after the side."""
    low = _RIGHT_NOT_SIDE_RE.sub(" ", text.lower())
    toks = tokens_of(low)
    sides = context_words().sides
    sites = _body_sites()
    out: set[tuple[str, str]] = set()
    for i, t in enumerate(toks):
        if t not in sides:
            continue
        for u in toks[i + 1 : i + 1 + SIDE_SITE_WINDOW]:
            site = normalize_word(u)
            if site in sites:
                out.add((t, site))
                break
            if u in sides:
                break
    return out


@lru_cache(maxsize=1)
def _body_sites() -> frozenset[str]:
    return frozenset(normalize_word(w) for w in clinical_terms()["body_sites"])


# words an acronym skips ("shortness of breath" -> "sob")
_ACRONYM_FILLERS = frozenset("of and the to in on a an for with".split())


# an acronym's words name something: one of them is rarer than this in general English
# ("physician" 4.3, "packs" 4.3), so a chance run ("right hand first") is no expansion
_ACRONYM_WORD_MAX_ZIPF = 4.8


def _initials_in(acronym: str, lines: list[list[str]]) -> bool:
    """Whether consecutive tokens of one line (fillers skipped; none a closed-class word or
    a speaker's label; one of them not an everyday word) start with the acronym's letters
    in order: "pcp" in "... your primary care physician"."""
    n = len(acronym)
    for tokens in lines:
        words = [t for t in tokens if t not in _ACRONYM_FILLERS]
        for i in range(len(words) - n + 1):
            if words[i][0] != acronym[0]:
                continue
            run = words[i : i + n]
            if all(
                w[0] == c and len(w) >= 3 and w not in _FUNCTION_WORDS and w not in _SPEAKERS
                for w, c in zip(run, acronym, strict=True)
            ) and any(zipf(w) < _ACRONYM_WORD_MAX_ZIPF for w in run):
                return True
    return False


_SPEAKERS = frozenset("doctor patient guest family clinician nurse".split())


def _both_sides(tokens: set[str]) -> bool:
    """Whether a source names both sides: "both", "left" and "right", or a paired body
    site in the plural ("my knees", "these feet"; ``paired_plurals`` in
    clinical_terms.json)."""
    if "both" in tokens or {"left", "right"} <= tokens:
        return True
    return not tokens.isdisjoint(clinical_terms()["paired_plurals"])


def tokens_of(text: str) -> list[str]:
    """Lower-case word tokens, stop words kept (pronouns matter here)."""
    return _TOKEN_RE.findall(text.lower())


def infer_sex(text: str) -> str | None:
    """The patient's sex as a note's own words tell it ("she", "woman", "Mr."), or None.

    A clear majority is needed (two to one), since a note also speaks of relatives.
    """
    pw = context_words()
    toks = tokens_of(text)
    m = sum(t in pw.male for t in toks)
    f = sum(t in pw.female for t in toks)
    if m >= 2 * f and m > 0:
        return MALE
    if f >= 2 * m and f > 0:
        return FEMALE
    return None


def normalize_sex(sex: str | None) -> str | None:
    """'male'/'female' from a FHIR gender or a word such as 'M', 'F', 'woman'; else None."""
    if not sex:
        return None
    s = sex.strip().lower()
    if s in ("m", "male", "man", "boy"):
        return MALE
    if s in ("f", "female", "woman", "girl"):
        return FEMALE
    return None


def check_person(
    sentence: str, sources_text: str, notes_text: str, patient_sex: str | None = None
) -> list[str]:
    """Reasons the sentence's person words are unsupported.

    Relatives (son, wife, mother ...) must be named in the cited notes. Words that give the
    patient a sex (he, she, man, woman, Mr ...) must agree with ``patient_sex`` or, when the
    record gives none, with the cited notes. Pronouns of the same sex as a relative in the
    sentence are taken to speak of that relative ("her husband says he ...").
    """
    pw = context_words()
    toks = tokens_of(sentence)
    reasons: list[str] = []
    src_toks = {normalize_word(t) for t in tokens_of(sources_text)}
    note_toks = {normalize_word(t) for t in tokens_of(notes_text)} | src_toks
    rel_sexes = set()
    for t in toks:
        if t in pw.relatives:
            if not any(normalize_word(w) in note_toks for w in pw.relatives[t]):
                reasons.append("person not in sources: " + t)
            if t in pw.relative_sex:
                rel_sexes.add(pw.relative_sex[t])
    said = set()
    if MALE not in rel_sexes and any(t in pw.male for t in toks):
        said.add(MALE)
    if FEMALE not in rel_sexes and any(t in pw.female for t in toks):
        said.add(FEMALE)
    if not said:
        return reasons
    sex = normalize_sex(patient_sex) or infer_sex(notes_text)
    if sex is None:
        if not any(t in src_toks for t in toks if t in pw.male or t in pw.female):
            reasons.append("person word not in sources (sex unknown)")
    elif said - {sex}:
        reasons.append("sex or pronoun contradicts the patient record")
    return reasons


def _scope_words(text: str, pattern: re.Pattern[str], window: int = 6) -> set[str]:
    """Content words near each cue of ``pattern``, within the cue's clause."""
    low = text.lower()
    pw = context_words()
    out: set[str] = set()
    for m in pattern.finditer(low):
        before = re.split(r"[.;:!?]|\bbut\b", low[: m.start()])[-1]
        after = re.split(r"[.;:!?]|\bbut\b", low[m.end() :])[0]
        cut = pw.current.search(after)
        if cut:
            after = after[: cut.start()]
        out.update(content_words(" ".join(before.split()[-window:])))
        out.update(content_words(after))  # "history of A, B, C": the whole list
    return out


def check_past_as_current(sentence: str, sources_text: str) -> list[str]:
    """A sentence that states as current ("currently", "presents with", "active") what its
    source calls past ("history of", "s/p", "resolved", "years ago", a year)."""
    pw = context_words()
    low = sentence.lower()
    if not pw.current.search(low) or pw.historical.search(low):
        return []
    past = _scope_words(sources_text, pw.historical)
    if not past:
        return []
    cues = set(content_words(" ".join(clinical_terms()["current_cues"])))
    stated = {w for w in content_words(sentence) if w not in cues}
    if stated & past:
        return ["past event stated as current"]
    return []


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

    def __init__(
        self,
        notes: Mapping[str, str],
        units: Iterable[SourceUnit] | None = None,
        *,
        vocabulary: Vocabulary | None = None,
        patient_sex: str | None = None,
    ) -> None:
        """``vocabulary``: what kind of fact each word states (default: the package drug
        names, the project's word lists and general English; pass
        :func:`~noteward.llm.lexicon.vocabulary_from_names` to add the vault's FHIR names).
        ``patient_sex``: the record's sex ('male'/'female'/FHIR gender), else read from the
        cited notes."""
        self.vocabulary = vocabulary
        self.patient_sex = patient_sex
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
            # "twenty six" also indexes as "26": a dialogue spells what a note writes in digits
            ws = frozenset(content_words(u.text)) | spelled_numbers(u.text) | acronyms(u.text)
            self._words.append(ws)
            for w in ws:
                self._postings[w].append(i)
                df[w] += 1
        n = max(1, len(self.units))
        self._idf = {w: math.log(1 + n / c) for w, c in df.items()}
        self._default_idf = math.log(1 + n)
        # lower-cased, whitespace-squeezed copies with offset maps for exact matching
        self._folded: dict[str, tuple[str, list[int]]] = {}
        self._stem_postings: dict[str, list[int]] | None = None
        self._by_note: dict[str, list[int]] | None = None
        self._stem_index: dict[str, list[str]] | None = None
        self._side_sites: dict[str, set[tuple[str, str]]] = {}
        self._note_tokens: dict[str, list[list[str]]] = {}

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

    def align(
        self, sentence: str, hint_units: Iterable[int] = (), patient_sex: str | None = None
    ) -> Alignment:
        """Align one summary sentence to source spans and judge whether they support it.

        ``patient_sex`` overrides the index's for this sentence (FHIR gender or 'M'/'F')."""
        hint_units = list(hint_units)
        prefer = [self.units[i].note_id for i in hint_units if 0 <= i < len(self.units)]
        exact = self.find_exact(sentence, prefer)
        said = checked_words(sentence)
        words = self._in_source_words(said)
        if exact is not None and is_negated(sentence) == is_negated(self._context(exact)):
            return Alignment([exact], 1.0, True, [], exact=True)
        if not words:
            return Alignment([], 0.0, False, ["no content words"])
        wording = _note_wording()
        weights = {w: self.idf(w) for w in set(words) if w not in wording} or {
            w: self.idf(w) for w in set(words)
        }
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
        chosen += self._units_with_numbers(sentence, chosen)
        src_text = " ".join(self.units[i].text for i in chosen)
        texts, answered = self._negation_sources(chosen)
        reasons = check_critical(
            sentence, src_text, self.units[chosen[0]].text, texts, answered, self.vocabulary
        )
        extra, fact_reasons = self._check_facts(sentence, said, chosen, patient_sex)
        if extra and _DRUG_MISSING in reasons:
            # a drug the chosen units lack may sit in a unit cited for it ("Patient: Ah
            # yes, I am taking Lyrica."): the drug check reads every cited unit
            cited = set().union(*(self._words[i] for i in [*chosen, *extra]))
            if all(d in cited for d in drugs_in(sentence)):
                reasons.remove(_DRUG_MISSING)
        reasons += fact_reasons
        paired = self._question_answer_pairs([*chosen, *extra])
        coverage = self._coverage(weights, [*chosen, *extra, *paired])
        if coverage >= SUPPORT_THRESHOLD:
            reasons += self._check_stitched(weights, total, ranked)
        support = min(coverage, FLAGGED_SUPPORT_CAP) if reasons else coverage
        supported = not reasons and coverage >= SUPPORT_THRESHOLD
        if not reasons and not supported:
            reasons.append(f"sources cover {coverage:.0%} of the sentence")
        spans = [
            SourceSpan(self.units[i].note_id, self.units[i].start, self.units[i].end)
            for i in [*chosen, *extra, *paired]
        ]
        return Alignment(spans, max(0.0, min(1.0, support)), supported, reasons)

    def _coverage(self, weights: Mapping[str, float], cited: list[int]) -> float:
        """The share of what the sentence says that its cited units hold, each word weighed
        by the information it carries in general English (:func:`lexicon.information`).

        All cited units count: those chosen for the sentence's words and those added for
        its numbers and fact words. Numbers, relatives and words that give the patient a
        sex count as held: each has its own check, which flags the sentence when it fails.
        Single letters ("y/o") weigh nothing."""
        pw = context_words()
        said = {w: information(w) for w in weights if len(w) > 1}
        if not said:
            return 1.0
        held: set[str] = set()
        for i in cited:
            held |= self._words[i]
        checked = pw.male | pw.female | pw.relatives.keys()
        total = math.fsum(said[w] for w in sorted(said))
        return (
            math.fsum(
                said[w] for w in sorted(said) if w in held or not w[0].isalpha() or w in checked
            )
            / total
        )

    def _negation_sources(self, chosen: list[int]) -> tuple[list[str], list[str]]:
        """What the cited units assert, and the questions answered "no".

        A dialogue question asserts nothing by itself: answered "no" its words are denied,
        answered "yes" it counts as written, otherwise only the answer turn counts. The
        answer is the first unit of the next line (the next speaker's turn), so a doctor's
        run of questions ("Was she slurring? Or any weakness?") shares the reply.
        """
        texts, answered = [], []
        for i in chosen:
            text = self.units[i].text
            if not is_question(text):
                texts.append(text)
                continue
            nxt = self._next_turn(i)
            if nxt is None:
                continue
            answer = self.units[nxt].text
            if is_negative_answer(answer):
                answered.append(question_part(text))
            elif _YES_ANSWER_RE.match(answer):
                texts.append(text)
            texts.append(answer)
        return texts, answered

    def _question_answer_pairs(self, cited: list[int]) -> list[int]:
        """The other half of each cited dialogue exchange: the answer turn of a cited
        question, the question a cited answer replies to ("Are you married?" - "Yes."; "How
        many times did you vomit?" - "I can't tell"). An answer means its question, so
        their words count toward coverage together; negation is still read from the
        answer (:meth:`_negation_sources`)."""
        out: list[int] = []
        for i in cited:
            j = self._next_turn(i) if is_question(self.units[i].text) else self._prev_turn(i)
            if j is not None and j not in cited and j not in out:
                if j < i and not is_question(self.units[j].text):
                    continue
                out.append(j)
        return out

    def _prev_turn(self, i: int) -> int | None:
        """The last unit of the line before unit ``i``'s line, in the same note."""
        unit = self.units[i]
        text = self.texts[unit.note_id]
        for j in range(i - 1, max(-1, i - 12), -1):
            u = self.units[j]
            if u.note_id != unit.note_id:
                return None
            if "\n" in text[u.end : unit.start]:
                return j
        return None

    def _next_turn(self, i: int) -> int | None:
        """The first unit after unit ``i`` that starts a new line of the same note."""
        unit = self.units[i]
        text = self.texts[unit.note_id]
        for j in range(i + 1, min(i + 12, len(self.units))):
            u = self.units[j]
            if u.note_id != unit.note_id:
                return None
            if "\n" in text[unit.end : u.start]:
                return j
        return None

    def _note_units(self, note_id: str) -> list[int]:
        if self._by_note is None:
            by_note: dict[str, list[int]] = defaultdict(list)
            for i, u in enumerate(self.units):
                by_note[u.note_id].append(i)
            self._by_note = by_note
        return self._by_note.get(note_id, [])

    def _units_with_numbers(self, sentence: str, chosen: list[int]) -> list[int]:
        """Further units of the cited notes that hold a number the chosen spans lack (a
        dialogue gives the age in its own turn: "I'm twenty six")."""
        doses = {n for n, unit in quantities_in(sentence) if unit in _DOSE_UNITS}
        # a dose must sit in the span that names its drug: never looked for elsewhere
        wanted = {n.lstrip("0") or "0" for n in numbers_in(sentence) if n not in doses}
        if not wanted:
            return []
        text = " ".join(self.units[i].text for i in chosen)
        wanted -= _with_short_years(
            {n.lstrip("0") or "0" for n in numbers_in(text)} | spelled_numbers(text)
        )
        notes = {self.units[i].note_id for i in chosen}
        extra: list[int] = []
        for i in (i for nid in sorted(notes) for i in self._note_units(nid)):
            if not wanted or len(extra) >= MAX_EXTRA_SPANS:
                break
            u = self.units[i]
            if i in chosen:
                continue
            have = _with_short_years(
                {n.lstrip("0") or "0" for n in numbers_in(u.text)} | spelled_numbers(u.text)
            )
            if wanted & have:
                extra.append(i)
                wanted -= have
        return extra

    # ---- the vocabulary's checks ----------------------------------------------------------

    def _in_source_words(self, words: list[str]) -> list[str]:
        """The sentence's words in the sources' own vocabulary: a word the sources lack is
        replaced by a source word of the same stem ("diabetic" -> "diabetes") or by the
        words of a lay synonym the sources hold ("hypertension" -> "blood", "pressure")."""
        out: list[str] = []
        lay = context_words().lay
        for w in words:
            if w in self._postings or not w[0].isalpha():
                out.append(w)
                continue
            same = self._stem_words().get(stem(w))
            if same:
                out.append(same[0])
                continue
            for phrase in lay.get(w, ()):
                pws = content_words(phrase)
                if pws and all(p in self._postings for p in pws):
                    out.extend(pws)
                    break
            else:
                out.append(w)
        return out

    def _stem_words(self) -> dict[str, list[str]]:
        if self._stem_index is None:
            index: dict[str, list[str]] = defaultdict(list)
            for w in sorted(self._postings):
                index[stem(w)].append(w)
            self._stem_index = index
        return self._stem_index

    def _stems(self) -> dict[str, list[int]]:
        if self._stem_postings is None:
            postings: dict[str, list[int]] = defaultdict(list)
            for i, ws in enumerate(self._words):
                for st in {stem(w) for w in ws}:
                    postings[st].append(i)
            self._stem_postings = postings
        return self._stem_postings

    def _check_facts(
        self, sentence: str, words: list[str], chosen: list[int], patient_sex: str | None
    ) -> tuple[list[int], list[str]]:
        """Further source units cited for fact words, and the reasons facts are unsupported."""
        vocab = self.vocabulary or default_vocabulary()
        pw = context_words()
        wording = _note_wording()
        units = list(chosen)
        src_text = " ".join(self.units[i].text for i in units).lower()
        src_words = set().union(*(self._words[i] for i in units))
        src_stems = {stem(w) for w in src_words}
        sentence_words = set(words)
        notes = {self.units[i].note_id for i in chosen}
        extra: list[int] = []
        missing: dict[str, list[str]] = defaultdict(list)

        def found(w: str) -> bool:
            if w in src_words or stem(w) in src_stems:
                return True
            return any(
                re.search(r"(?<![a-z])" + re.escape(lay) + r"(?![a-z])", src_text)
                for lay in pw.lay.get(w, ())
            )

        for w in dict.fromkeys(words):
            # note wording ("followup") and units of measure ("mmhg") state no fact
            kind = None if w in wording or w in _UNITS or w in pw.sides else vocab.kind(w)
            if kind == UNKNOWN and is_plain_english(w):
                kind = None
            if kind is None or found(w):
                continue
            # the fact may sit in another unit of a cited note: cite that unit too
            hit = None
            if len(extra) < MAX_EXTRA_SPANS:
                cands = list(self._stems().get(stem(w), ()))
                for lay in pw.lay.get(w, ()):
                    cands += self._postings.get(normalize_word(lay.split()[0]), ())
                cands = [i for i in cands if self.units[i].note_id in notes]
                if cands:
                    hit = max(cands, key=lambda i: (len(self._words[i] & sentence_words), -i))
            if hit is None and kind != DRUG and self._said_otherwise(w, sentence, notes):
                continue
            if hit is None:
                missing[kind].append(w)
                continue
            extra.append(hit)
            src_words |= self._words[hit]
            src_stems |= {stem(x) for x in self._words[hit]}
            src_text += " " + self.units[hit].text.lower()
        reasons = []
        for kind in (DRUG, CLINICAL):
            if missing.pop(kind, None):
                reasons.append(
                    f"{kind} name not in sources" if kind == DRUG else f"{kind} not in sources"
                )
        if missing:
            reasons.append("unknown word not in sources (possible drug)")
        sides = side_words(sentence)
        chosen_text = " ".join(self.units[i].text for i in chosen)
        chosen_toks = set(tokens_of(chosen_text))
        missing_sides = [
            t
            for t in sides
            if t not in chosen_toks and not (t.startswith("bilateral") and _both_sides(chosen_toks))
        ]
        if missing_sides and not self._sides_said_elsewhere(sentence, missing_sides, notes):
            reasons.append("side not in sources")
        notes_text = "\n".join(self.texts[n] for n in sorted(notes))
        reasons += check_person(sentence, src_text, notes_text, patient_sex or self.patient_sex)
        reasons += check_past_as_current(sentence, src_text)
        return extra, reasons

    def _said_otherwise(self, word: str, sentence: str, notes: set[str]) -> bool:
        """Whether the cited notes say a missing word as an acronym's words or the other
        way round ("PCP" - "primary care physician", "chronic obstructive pulmonary
        disease" - "C O P D"), or as a compound's parts ("plantarflexion" - "plantar
        flexion", "post-partum" - "postpartum"). Never asked of a drug name."""
        lines: list[list[str]] = []
        for nid in sorted(notes):
            if nid not in self._note_tokens:
                self._note_tokens[nid] = [
                    [normalize_word(t) for t in tokens_of(line)]
                    for line in re.split(r"[\n.;:?!]+", self.texts[nid])
                ]
            lines += self._note_tokens[nid]
        # the units' words hold spelled acronyms too ("C O P D" -> "copd")
        note_words = set().union(
            *lines, *(self._words[i] for n in notes for i in self._note_units(n))
        )
        # "pcp" spelled out: consecutive content words with those initials
        if 3 <= len(word) <= 5 and _initials_in(word, lines):
            return True
        toks = [normalize_word(t) for t in tokens_of(sentence)]
        content = [t for t in toks if t not in _ACRONYM_FILLERS]
        # the sentence spells out what the notes abbreviate: a run of three to five of its
        # words, the word among them, whose initials the notes write as one ("copd"; an
        # English word such as "it" is no acronym)
        for i, t in enumerate(content):
            if t != word:
                continue
            for a in range(max(0, i - 4), i + 1):
                for b in range(max(i + 1, a + 3), min(len(content), a + 5) + 1):
                    run = content[a:b]
                    if any(len(x) < 3 or x in _FUNCTION_WORDS for x in run):
                        continue
                    initials = "".join(x[0] for x in run)
                    if initials in note_words and not zipf(initials):
                        return True
        # compounds: the notes write the word's two parts, or the sentence's hyphenated
        # parts as one word
        if len(word) >= 6:
            pairs = {p for toks in lines for p in zip(toks, toks[1:], strict=False)}
            if any((word[:k], word[k:]) in pairs for k in range(3, len(word) - 2)):
                return True
        low = sentence.lower()
        for m in re.finditer(r"([a-z]+)-([a-z]+)", low):
            if word in (normalize_word(m.group(1)), normalize_word(m.group(2))):
                if normalize_word(m.group(1) + m.group(2)) in note_words:
                    return True
        return False

    def _sides_said_elsewhere(self, sentence: str, sides: list[str], notes: set[str]) -> bool:
        """Whether each side the cited spans lack is named for its body site elsewhere in
        the cited notes, and that site is never given the other side there: a dialogue
        says "my right knee" once and "the knee" after. A flipped side is still caught,
        since its note names the site with the true side."""
        pairs = side_sites(sentence)
        note_pairs: set[tuple[str, str]] = set()
        for nid in notes:
            if nid not in self._side_sites:
                self._side_sites[nid] = side_sites(self.texts[nid])
            note_pairs |= self._side_sites[nid]
        for t in sides:
            other = _OPPOSITE_SIDE.get(t)
            said = [
                site
                for side, site in pairs
                if side == t and (t, site) in note_pairs and (other, site) not in note_pairs
            ]
            if other is None or not said:
                return False
        return True

    def _check_stitched(
        self, weights: dict[str, float], total: float, ranked: list[tuple[int, float]]
    ) -> list[str]:
        """Unsupported when no single note covers most of the sentence and another note's
        unit holds much of the rest, or when the best note lacks facts (two or more) that
        another note's unit holds: halves of two unrelated notes stitched together."""
        if len(self.texts) < 2:
            return []
        by_note: dict[str, set[str]] = defaultdict(set)
        spans_in: dict[str, int] = defaultdict(int)
        for i, _ in ranked[:200]:
            nid = self.units[i].note_id
            if spans_in[nid] >= MAX_SPANS:
                continue
            gain = {w for w in self._words[i] if w in weights} - by_note[nid]
            if gain:
                by_note[nid] |= gain
                spans_in[nid] += 1
        if not by_note:
            return []

        def share(ws: Iterable[str]) -> float:
            return math.fsum(weights[w] for w in ws) / total

        best_note = max(sorted(by_note), key=lambda n: share(by_note[n]))
        best = share(by_note[best_note])
        rest = set(weights) - by_note[best_note]
        vocab = self.vocabulary or default_vocabulary()
        # the facts (drug, condition, body site, unknown word, number) the best note lacks
        rest_facts = {w for w in rest if w[0].isdigit() or vocab.kind(w) is not None}
        other, other_facts = 0.0, 0
        for i, _ in ranked[:200]:
            if self.units[i].note_id != best_note and len(self._words[i] & rest) >= 2:
                other = max(other, share(self._words[i] & rest))
                other_facts = max(other_facts, len(self._words[i] & rest_facts))
        if (best < STITCH_MIN_COVERAGE and other >= STITCH_OTHER_COVERAGE) or (
            best < STITCH_FACT_COVERAGE and other_facts >= 2
        ):
            return [f"stitched from unrelated sources (best single note covers {best:.0%})"]
        return []


_FREQUENCY_WORDS = {
    "daily": r"(?:a|per|each|every) day|once a day|qd",
    "nightly": r"(?:at|every|each) night|bedtime|qhs",
    "weekly": r"(?:a|per|each|every) week",
    "monthly": r"(?:a|per|each|every) month",
    "yearly": r"(?:a|per|each|every) year",
    "annually": r"(?:a|per|each|every) year",
    "twice": r"two times|2 times|bid",
    "bid": r"twice|two times",
    "tid": r"three times",
    "qid": r"four times",
    "prn": r"as needed|when needed|if needed",
}


_TIMES_RE = re.compile(
    r"(?<![a-z])([a-z]+|\d+) times(?![a-z])|(?<![a-z])(once|twice|thrice|bid|tid|qid)(?![a-z])"
)
_TIMES_WORDS = {"once": 1, "twice": 2, "thrice": 3, "bid": 2, "tid": 3, "qid": 4}


def _times_per(text: str) -> set[int]:
    """How many times ("three times", "3 times", "twice", "b.i.d.") a text doses."""
    out: set[int] = set()
    for m in _TIMES_RE.finditer(text.lower().replace(".", "")):
        if m.group(2):
            out.add(_TIMES_WORDS[m.group(2)])
        elif m.group(1).isdigit():
            out.add(int(m.group(1)))
        elif m.group(1) in _SMALL and m.group(1) not in ("a", "an", "half"):
            out.add(_SMALL[m.group(1)])
    return out


def _said_as(word: str, text: str) -> bool:
    """Whether a dosing frequency word is said in other words in the text."""
    pattern = _FREQUENCY_WORDS.get(word)
    if pattern is None:
        return False
    return re.search(r"(?<![a-z])(?:" + pattern + r")(?![a-z])", text.lower()) is not None


_DRUG_MISSING = "drug name not in sources"


def check_critical(
    sentence: str,
    sources_text: str,
    primary_text: str,
    negation_sources: list[str] | None = None,
    answered_no: Iterable[str] = (),
    vocabulary: Vocabulary | None = None,
) -> list[str]:
    """Reasons a sentence is unsupported by its sources' numbers, dates, drugs, negation.

    ``negation_sources``: the cited units one by one (a question answered "no" carries the
    answer's negation), else ``sources_text`` as one text. ``primary_text`` is kept for
    callers; negation is now compared over all cited units, cue scope by cue scope.
    ``vocabulary`` tells which words state findings (default: the package vocabulary)."""
    reasons: list[str] = []
    src_numbers = {n.lstrip("0") or "0" for n in numbers_in(sources_text)}
    src_numbers = _with_short_years(src_numbers | spelled_numbers(sources_text))
    missing_numbers = [n for n in numbers_in(sentence) if (n.lstrip("0") or "0") not in src_numbers]
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
    # a frequency is a dosing fact only beside a dose or a drug ("attempted suicide twice"
    # is not); "daily" is also said "a day", "every day", "per day"
    dosing = bool(drugs_in(sentence)) or any(u in _DOSE_UNITS for _n, u in quantities_in(sentence))
    if dosing and (
        any(
            w in freq and w not in src_words and not _said_as(w, sources_text)
            for w in content_words(sentence)
        )
        or not _times_per(sentence) <= _times_per(sources_text)
    ):
        reasons.append("dosing frequency not in sources")
    missing_drugs = sorted(d for d in drugs_in(sentence) if d not in src_words)
    if missing_drugs:
        reasons.append(_DRUG_MISSING)
    src_months = months_in(sources_text)
    if any(m not in src_months for m in months_in(sentence)):
        reasons.append("date not in sources")
    if negation_differs(sentence, negation_sources or [sources_text], answered_no, vocabulary):
        reasons.append("negation differs from the source")
    return reasons


def align_sentence(
    sentence: str,
    notes: Mapping[str, str],
    *,
    vocabulary: Vocabulary | None = None,
    patient_sex: str | None = None,
) -> Alignment:
    """Convenience: align one sentence against ``{note_id: text}`` (builds a fresh index)."""
    return SourceIndex(notes, vocabulary=vocabulary, patient_sex=patient_sex).align(sentence)
