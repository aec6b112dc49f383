"""Clinical PHI recognizers plugged into Presidio's AnalyzerEngine.

All patterns and word lists come from resources/deid (see rules.py). Each recognizer
emits Noteward's entity names directly and marks, in ``recognition_metadata``, whether
its hit is *strong* (a pattern or a title: never second-guessed) or *weak* (a statistical
NER or lexicon guess, which the clinical-meaning filter may drop).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from noteward.deid.rules import Lexicons, Rule, _by_first_letter, load_rules
from noteward.deid.types import ENTITY_TYPES

STRONG = "strong"
_CONTEXT_WINDOW = 40
_WORD = re.compile(r"[a-z][a-z'/-]*|#")
# Words after a single eponym that make it a clinical term ("Foley catheter").
_EPONYM_CUE = re.compile(
    r"^(?:'s|’s|s)?\s*(?:disease|syndrome|sign|test|catheter|maneuver|manoeuvre|score|scale|"
    r"criteria|fracture|palsy|phenomenon|reflex|position|drain|tube|procedure|operation|"
    r"classification|stage|grade|type|method|staging|repair|lymphoma|sarcoma|tumou?r|ulcer|"
    r"esophagus|node|nodes|bodies|body|cells?|line|tract|triad|law|rule|index|murmur|"
    r"respiration|breathing|dementia|chorea|thyroiditis|disorder|placed|inserted|removed|"
    r"changed|draining|intact|in place|bag|care|cath|needle|lock|solution|stain|blot|"
    r"aneurysm|canal|cyst|gland|ligament|space|duct|pouch|diverticulum|fundoplication)\b",
    re.IGNORECASE,
)


RECALL_ONLY = "recall_only"
# Recall-only hits travel through Presidio under a type of their own, so that its
# duplicate removal (a span inside another of the same type with a higher or equal
# score is dropped) never lets one of them remove a default-point hit.
RECALL_SUFFIX = "@recall"


def _result(
    entity: str, start: int, end: int, score: float, name: str, strong: bool, recall_only: bool = False
) -> RecognizerResult:
    return RecognizerResult(
        entity_type=entity + RECALL_SUFFIX if recall_only else entity,
        start=start,
        end=end,
        score=score,
        analysis_explanation=None,  # type: ignore[arg-type]
        recognition_metadata={
            "rule": name,
            STRONG: strong,
            RECALL_ONLY: recall_only,
        },
    )


def _context_words(text: str, start: int) -> set[str]:
    return set(_WORD.findall(text[max(0, start - _CONTEXT_WINDOW) : start].lower()))


class ClinicalPatternRecognizer(EntityRecognizer):
    """Every regex rule of patterns.yaml (dates, ages, contacts, numbers, addresses)."""

    def __init__(self, rules: Iterable[Rule] | None = None) -> None:
        self.rules = tuple(rules) if rules is not None else load_rules()[0]
        super().__init__(
            supported_entities=sorted({r.entity for r in self.rules}),
            name="NotewardPatterns",
            supported_language="en",
            context=[],
        )

    def load(self) -> None:  # nothing to load: the rules are compiled already
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        for rule in self.rules:
            for m in rule.regex.finditer(text):
                start, end = m.span(rule.group)
                if start < 0 or start == end:
                    continue
                if rule.not_before is not None and rule.not_before.search(text[max(0, start - 30) : start]):
                    continue
                if rule.not_after is not None and rule.not_after.search(text[end : end + 30]):
                    continue
                score = rule.score
                if rule.context:
                    has = bool(rule.context & _context_words(text, start))
                    if rule.requires_context and not has:
                        continue
                    if has:
                        score = min(1.0, score + 0.35)
                out.append(_result(rule.entity, start, end, score, rule.name, not rule.weak, rule.recall_only))
        return out


class LabelledIdRecognizer(EntityRecognizer):
    """Identifiers after a label ("MRN: 123456", "member ID XY-345678") and bare
    identifier-shaped tokens, typed by the nearest label in front of them."""

    def __init__(self) -> None:
        self.ids = load_rules()[1]
        super().__init__(
            supported_entities=list(ENTITY_TYPES), name="NotewardIdentifiers", supported_language="en", context=[]
        )

    def load(self) -> None:
        pass

    def _entity_for_label(self, label: str) -> str:
        return self.ids.label_entity.get(re.sub(r"\s+", " ", label.lower()), "OTHER_ID")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        taken: list[tuple[int, int]] = []
        for m in self.ids.regex.finditer(text):
            start, end = m.span(m.lastindex or 0)
            value = text[start:end]
            # a label followed by a dose or a plain small number is not an identifier
            if not any(c.isdigit() for c in value):
                continue
            out.append(_result(self._entity_for_label(m.group("label")), start, end, self.ids.score, "labelled_id", True))
            taken.append((start, end))
        for m in self.ids.bare.finditer(text):
            start, end = m.span()
            if any(s < end and start < e for s, e in taken):
                continue
            if self.ids.bare_not_after is not None and self.ids.bare_not_after.search(text[end : end + 20]):
                continue
            if text[start] == "#":
                start += 1
                while start < end and text[start] == " ":
                    start += 1
            window = text[max(0, start - 60) : start]
            labels = list(self.ids.label_finder.finditer(window))
            entity = self._entity_for_label(labels[-1].group("label")) if labels else "OTHER_ID"
            out.append(_result(entity, start, end, self.ids.bare_score, "bare_id", True))
        return out


# Verbs that follow a person's name far more often than a drug's or a place's.
_PERSON_VERB = re.compile(
    r"(?:lives|lived|said|says|shouted|replied|asked|told|reports|reported|states|stated|denies|"
    r"denied|complains|complained|called|went|came|began|wants|wanted|is very|was born|can|"
    r"will be|has been|thinks|thought|feels|felt|walked|ran|smiled|laughed)\b|,\s*can\b"
)


_STREET_WORDS = frozenset(
    "street st avenue ave road rd boulevard blvd lane ln drive dr court ct way place pl terrace close "
    "trail greens flats parkway square crescent rue via calle avenida av rua ul strasse straße gasse "
    "weg vej gade katu tie allee platz".split()
)
# Months and days: the date rules' work, never a name on their own.
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
_UNITS = frozenset(
    "mg mcg ml g kg mm cm l dl meq mmol units unit iu tab tabs tablet tablets cap caps capsule capsules "
    "puffs puff drops drop times days day weeks week months month years year hours hour hrs hr minutes min "
    "mins mmhg bpm x of to and or".split()
)


def _title_variants(words: Iterable[str]) -> str:
    """An alternation where every word starts with a capital and the rest may be any case."""
    alts = []
    for phrase in sorted(set(words), key=len, reverse=True):
        parts = []
        for w in phrase.split():
            w_esc = re.escape(w[1:]).replace("'", "['’]")
            parts.append(f"[{w[0].upper()}](?i:{w_esc})")
        alts.append(r"\s+".join(parts))
    return "|".join(alts)


# Facility words that name no hospital on their own before "ED" ("in general ED beds").
_NOT_HOSPITAL_NAMES = frozenset({
    "general", "university", "college", "ambulatory", "hospital", "hospitals", "clinic", "clinics", "hospice",
    "healthcare", "infirmary", "sanatorium", "surgicenter",
})


class PlaceRecognizer(EntityRecognizer):
    """Hospitals and clinics, cities, states and countries from the gazetteer, and
    "City, ST" pairs."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.v = vocab
        self.lex = vocab.lex
        super().__init__(supported_entities=["LOCATION"], name="NotewardPlaces", supported_language="en", context=[])
        cw = r"[A-ZÀ-Þ][\w'’-]+"
        self.cue = re.compile(
            rf"\b(?:in|at|from|near|(?:moved|flew|went|trip|travell?ed|travell?ing|relocated|emigrated|"
            rf"immigrated|drove|returned|came|coming|back)\s+(?:back\s+)?(?:to|from)|corner\s+of|city\s+of|town\s+of|"
            rf"home\s+city|born\s+in|grew\s+up\s+in|lives\s+in|originally\s+from)\s+({cw}(?:\s+{cw}){{0,2}})"
        )
        self.house = re.compile(
            r"\b\d{1,6}\s+((?:[A-ZÀ-Þa-zß-ÿ][\w'’.-]*\s+){1,4})\d{1,5}[A-Za-z]?\b\.?"
            r"|\b\d{1,6}[ \t]+\d{1,5}[A-Za-z]?[ \t]+((?:[A-ZÀ-Þa-zß-ÿ][\w'’.-]*[ \t]+){0,3}[A-ZÀ-Þa-zß-ÿ][\w'’.-]*)"
        )
        fac_words = _title_variants(self.lex.facility_words)
        cap = r"(?!(?:FROM|AT|TO|IN|THE|OF|AND|WITH|FOR|ON|BY|VIA|PER|SEEN|ADMITTED|TRANSFERRED|DISCHARGED)\b)[A-Z][\w'’.&-]*"
        self.facility = re.compile(
            # a name on one line: a signature block's lines above it are no part of it
            rf"(?:\b(?:St|Mt|Saint|Mount|Ste)\.?[ \t]+)?(?:\b{cap}[ \t]+(?:(?:of|the|and|for|&)[ \t]+)?){{1,5}}"
            rf"(?:{fac_words})\b(?:['’]s)?"
            # the words after the facility word stay on its line ("Sibley Memorial in DC.\nPt")
            rf"(?:[ \t]+(?:of|at|in|for)[ \t]+{cap}(?:[ \t]+{cap}){{0,2}}"
            rf"|[ \t]+(?!(?:on|in|at|and|for|with)\b)[A-Z][a-z]+(?:[ \t]+[A-Z][a-z]+)?(?=\s*[,.;)]|\s*$))?"
            rf"|\b(?:{fac_words})[ \t]+(?:of|at|in|for)[ \t]+{cap}(?:[ \t]+{cap}){{0,3}}"
        )
        known = self.lex.facility_names + self.lex.places
        # every alternative starts with one of these capitals: the lookahead spares the
        # hundreds of alternatives at every other word boundary (same matches; 0.41 ->
        # under 0.03 ms CPU per dev note)
        firsts = "".join(sorted({re.escape(p.split()[0][0].upper()) for p in known if p.split()}))
        ahead = rf"(?=[{firsts}])" if all(p.split() for p in known) else ""
        self.known = re.compile(rf"\b{ahead}(?:{_title_variants(known)})\b")
        codes = "|".join(sorted(self.lex.state_codes))
        self.city_state = re.compile(
            rf"\b[A-Z][a-zA-Z'’.-]+(?:\s+[A-Z][a-zA-Z'’.-]+){{0,2}},\s+(?:{codes})\b(?!-)(?:\s+\d{{5}}(?:-\d{{4}})?)?"
        )
        # a hospital's emergency department named by its facility word: "from Mercy ED"
        named = [w for w in self.lex.facility_words if " " not in w and w not in _NOT_HOSPITAL_NAMES]
        self.facility_ed = re.compile(
            rf"(?i)\b(?:from|to|at|@|in|via)[ \t]+(?:the[ \t]+)?((?:{'|'.join(map(re.escape, named))}))[ \t]+(?:ed|er)\b"
        )
        self.saint = re.compile(r"\b(?:St|Saint|Mt|Mount)\.?[ \t]+[A-Z][a-z]+(?:['’]s)?(?![ \t]+(?:wort|[Ww]ort)\b)")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out = []
        for m in self.facility.finditer(text):
            if text[m.end() : m.end() + 1] == ":":
                continue  # a heading such as "General:"
            if not re.search(r"[a-z]", m.group(0)) or m.group(0).islower():
                # all capitals or all lower case: some word besides the facility word must
                # be no dictionary word ("URINE OUT SKIN INTACT GENERAL" is no hospital)
                rest = [w for w in re.findall(r"[A-Za-z]+", m.group(0))
                        if not any(w.lower() in f.split() for f in self.lex.facility_words)]
                if not any(not self.v.known_word(w.lower()) and not self.v.shorthand(w) for w in rest):
                    continue
            end = m.end()
            if text[end - 1] == "." and len(text[m.start() : end].split()[-1]) > 4:
                end -= 1  # a full stop, not an abbreviation
            out.append(_result("LOCATION", m.start(), end, 0.85, "facility", True))
        for m in self.known.finditer(text):
            g = m.group(0)
            if g.isupper() and len(g) <= 4 and (self.v.known_word(g.lower()) or self.v.shorthand(g)):
                continue  # "LIMA" (a graft): a short word in capitals that is also a word reads as shorthand
            out.append(_result("LOCATION", m.start(), m.end(), 0.8, "gazetteer", True))
        for m in self.city_state.finditer(text):
            city = m.group(0).split(",")[0].split()
            if m.group(0).isupper() or any(self.v.shorthand(w) or self.v.known_word(w.lower()) for w in city):
                if not all(w.lower() in self.v.us_places or w.lower() in self.v.places for w in city):
                    continue  # "NT, ND", "sats wnl, CT": shorthand before a state code
            out.append(_result("LOCATION", m.start(), m.end(), 0.85, "city_state", True))
        for m in self.saint.finditer(text):
            out.append(_result("LOCATION", m.start(), m.end(), 0.75, "saint", True))
        for m in self.facility_ed.finditer(text):
            out.append(_result("LOCATION", m.start(1), m.end(1), 0.75, "facility_ed", True))
        for m in self.cue.finditer(text):
            words = m.group(1).split()
            if all(self._place_word(w) for w in words):
                out.append(_result("LOCATION", m.start(1), m.end(1), 0.65, "place_cue", False))
        for m in self.house.finditer(text):
            words = (m.group(1) or m.group(2) or "").split()
            if m.group(1) and (
                re.match(r"[.,]\d", text[m.end() : m.end() + 2]) or re.match(r"\.\d", text[m.end() - 1 : m.end() + 1])
                or any(self._not_street_word(w, last=i == len(words) - 1) for i, w in enumerate(words))
            ):
                continue  # "575 cc for LOS. Given 117", "PS to 10 with better TVs 200", "BUN 43 Creat 1.8"
            if m.group(2) and not any(
                w.lower().rstrip(".") in _STREET_WORDS or not self.v.known_word(w.lower()) for w in words
            ):
                continue  # "120 80 Sitting" is a blood pressure, not an address
            street = any(w.lower().rstrip(".") in _STREET_WORDS for w in words)
            titled = any(w[:1].isupper() and not w.isupper() for w in words)
            if (street or titled) and not any(
                self.v.clinical(w) or w.lower() in _UNITS for w in words
            ):
                out.append(_result("LOCATION", m.start(), m.end(), 0.7, "house_number", True))
        return out

    def _not_street_word(self, w: str, last: bool) -> bool:
        """Between a house number and a flat number: a sentence break, a stop word, a unit
        or a lower-case dictionary word says these are measurements, not an address."""
        lw = w.lower().rstrip(".")
        if lw in _STREET_WORDS:
            return False
        if w.endswith(".") and not last and len(lw) >= 3 and (w[:-1].islower() or w[:-1].isupper()) \
                and (self.v.known_word(lw) or self.v.listed_shorthand(lw)):
            return True  # "yesterday. Psv", "LOS. Given": a sentence ends ("Avda.", "u." do not)
        if lw in self.lex.measure_links or lw in _UNITS or self.v.clinical(lw) or (lw in self.v.allow and lw not in self.v.stop):
            return True  # "cc for", "to 10 with", "Vt", "PSV"
        return w.islower() and self.v.known_word(lw) and lw.endswith(("ing", "ed"))  # "maintaining"

    def _place_word(self, w: str) -> bool:
        lw = w.lower()
        if self.v.shorthand(lw):
            return False
        if lw in self.v.places:
            return True
        if w.isupper() and len(w) <= 4:
            return False  # abbreviations: "in ED", "from SNF"
        return not (self.v.known_word(lw) or self.v.clinical(lw) or lw in self.lex.eponyms or lw in self.v.names)


_INFLECTIONS = (
    ("ies", "y"), ("es", ""), ("s", ""), ("ied", "y"), ("ed", ""), ("ed", "e"), ("ing", ""),
    ("ing", "e"), ("'d", ""), ("'s", ""), ("er", ""), ("est", ""), ("ly", ""), ("ily", "y"),
    ("ment", ""), ("ness", ""), ("'ed", ""),
)


class Vocabulary:
    """Word knowledge shared by the name and NER recognizers."""

    def __init__(self, lex: Lexicons, english: frozenset[str], stop: frozenset[str],
                 nouns_only: frozenset[str] = frozenset()) -> None:
        self.lex = lex
        self.english = english
        self.stop = stop
        self.nouns_only = nouns_only
        self.names = lex.first_names | lex.surnames
        self.places = frozenset(w for p in lex.places for w in p.split())
        # cities of the world, not countries or states (Safe Harbor keeps those): "mexico city"
        self.city_phrases = frozenset(p for p in lex.cities if " " in p)
        self.city_words = frozenset(w for p in lex.cities for w in p.split())
        from noteward.deid.lists import clinical_allow, drug_words, name_lists, us_places

        self.allow = clinical_allow()
        self.drugs = drug_words()
        self._sorted_words: tuple[str, ...] | None = None
        self.census = name_lists()
        self.us_places = us_places()
        # words of countries and states only, no US town: Safe Harbor keeps those (the dev gold
        # marks no state or country on its own, only inside a facility's name: "U Maryland")
        self.region_words = self.places - self.city_words - self.us_places
        self._misspelt: dict[str, bool] = {}
        self._known: dict[str, bool] = {}
        self._short: dict[str, bool] = {}

    def misspelt_word(self, word: str) -> bool:
        """One edit away from a dictionary word ("recieved", "tollerating"): nursing notes
        misspell ordinary words far more often than they misspell names. Words of five
        letters or more only; a listed name is never a misspelling."""
        w = word.lower()
        if len(w) < 4 or not w.isalpha() or w in self.names or self.census.is_name(w, 2):
            return False
        hit = self._misspelt.get(w)
        if hit is None:
            letters = "abcdefghijklmnopqrstuvwxyz"
            splits = [(w[:i], w[i:]) for i in range(len(w) + 1)]
            # swapped letters from four letters on ("wtih"); other edits only in longer
            # words, where a surname is rarely one letter from a dictionary word
            cands = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            if len(w) >= 7:
                cands |= {a + b[1:] for a, b in splits if b}
                cands |= {a + c + b[1:] for a, b in splits if b for c in letters}
                cands |= {a + c + b for a, b in splits for c in letters}
            cands.discard(w)
            # every candidate has 4+ letters (len(w) >= 4)
            hit = not self.english.isdisjoint(cands) or not self.drugs.isdisjoint(cands)
            if len(self._misspelt) < 50000:
                self._misspelt[w] = hit
        return hit

    def shorthand(self, word: str) -> bool:
        """A clinical word, abbreviation or shorthand form that is never PHI on its own:
        the allow-list, apostrophe forms of known words ("rec'd", "sxn'd"), misspellings."""
        w = word.lower().strip(".,;:()[]")
        hit = self._short.get(w)
        if hit is None:
            hit = self._shorthand(w)
            if len(self._short) < 200000:
                self._short[w] = hit
        return hit

    def listed_shorthand(self, word: str) -> bool:
        """``shorthand`` without the misspelling guess: after a cue ("per", "dtr", a title,
        a credential) a rare surname one letter from a dictionary word is still a name."""
        w = word.lower().strip(".,;:()[]")
        return self._listed(w) if w else True

    def _listed(self, w: str) -> bool:
        if w in self.allow or self.clinical(w):
            return True
        m = re.fullmatch(r"([a-z]+)['’](?:d|ed|s|ing)", w)
        if m and (m.group(1) in self.allow or self.known_word(m.group(1)) or len(m.group(1)) <= 4):
            return True
        return "-" in w and all(p in self.allow or self.known_word(p) for p in w.split("-") if p)

    def _shorthand(self, w: str) -> bool:
        if not w:
            return True
        if w in self.allow or self.clinical(w):
            return True
        m = re.fullmatch(r"([a-z]+)['’](?:d|ed|s|ing)", w)
        if m and (m.group(1) in self.allow or self.known_word(m.group(1)) or len(m.group(1)) <= 4):
            return True
        if "-" in w and all(p in self.allow or self.known_word(p) for p in w.split("-") if p):
            return True
        return self.misspelt_word(w)

    def not_name_word(self, word: str) -> bool:
        """This word alone is not a name: shorthand, or a dictionary word written in a case
        that tells nothing (all lower or ALL CAPS, as nursing notes are written). A
        capitalised word is never taken for a misspelling ("Katrine" is no "latrine")."""
        bare = word.strip(".,;:'’()")
        if bare[:1].isupper() and not bare.isupper():
            lw = bare.lower()
            if lw in self.allow or self.clinical(lw):
                return True
        elif self.shorthand(word):
            return True
        if bare.islower() or (bare.isupper() and len(bare) > 1):
            return self.known_word(bare.lower())
        return False

    def clinical(self, word: str) -> bool:
        w = word.lower().strip(".,;:'’")
        if w in self.lex.clinical_words or w in self.drugs or any(c.isdigit() for c in w):
            return True
        return len(w) > 5 and w.endswith(self.lex.clinical_suffixes)

    def run_together(self, word: str) -> bool:
        """Two words written as one, one of them clinical or a stop word ("urineoutput",
        "sedationand"): shorthand, not a name or a place. Place and family names built
        the same way ("Greenfield", "Goodman") are on the lists and never reach here."""
        w = word.lower()
        if len(w) < 7 or not w.isalpha():
            return False
        for i in range(3, len(w) - 2):
            a, b = w[:i], w[i:]
            if self.known_word(a) and self.known_word(b) and (
                a in self.stop or b in self.stop or self.listed_shorthand(a) or self.listed_shorthand(b)
            ):
                return True
        return False

    def abbreviation(self, word: str) -> bool:
        """The first five or more letters of a drug or dictionary word ("norepi", "periph"):
        nursing notes clip words. Used for places only: given names are often the start
        of a word ("Chris", "Mart")."""
        w = word.lower()
        if len(w) < 5 or not w.isalpha():
            return False
        if self._sorted_words is None:
            self._sorted_words = tuple(sorted(self.drugs | self.english | self.lex.clinical_words))
        words = self._sorted_words
        i = bisect.bisect_right(words, w)
        return i < len(words) and words[i].startswith(w) and len(words[i]) > len(w)

    def known_word(self, word: str) -> bool:
        """In the dictionary, directly or as an inflected form ("appears", "diagnosed")."""
        w = word.lower().replace("’", "'")
        hit = self._known.get(w)
        if hit is None:
            hit = self._known_word(w)
            if len(self._known) < 200000:
                self._known[w] = hit
        return hit

    def _known_word(self, w: str) -> bool:
        if w in self.english or w in self.stop:
            return True
        for suffix, repl in _INFLECTIONS:
            if w.endswith(suffix) and len(w) - len(suffix) >= 2:
                base = w[: len(w) - len(suffix)] + repl
                if base in self.english:
                    return True
        return False

    def verb_s(self, w: str) -> bool:
        """An -s form of a dictionary word that is more than a noun ("states", "says"),
        unlike a surname whose singular WordNet lists as a person ("moores")."""
        return w.endswith("s") and w[:-1] in self.english and w[:-1] not in self.nouns_only

    def inflected_surname(self, w: str) -> bool:
        """A Census surname that dictionaries know only as an inflected form ("costales" =
        costal + es, "songer"), not as a word of its own, and no -s verb ("states")."""
        return self.census.is_last(w) and w not in self.english and not self.verb_s(w)

    def common(self, word: str) -> bool:
        """An ordinary English word (WordNet lemma or stop word) that is not a listed name."""
        w = word.lower()
        return w not in self.names and self.known_word(w)

    def first_name(self, word: str) -> bool:
        w = word.lower()
        return w in self.lex.first_names and w not in self.lex.ambiguous_names

    def name_token(self, tok: Any, after_title: bool = False) -> bool:
        """Could this token be part of a person's name here?"""
        t = tok.text
        if not t[:1].isalpha() or len(t) > 30:
            return False
        bare = t.rstrip(".")
        if len(bare) == 1 and bare.isupper():
            return True  # an initial
        if t.endswith("-"):
            return False  # a section label ("Plan- cont", "Neuro-")
        if not bare.replace("-", "").replace("'", "").replace("’", "").isalpha():
            return False
        w = bare.lower()
        if after_title and bare[0].isupper() and w not in self.stop and w not in self.lex.titles \
                and w not in self.lex.post_titles:
            if w not in self.allow and w not in self.lex.clinical_words:
                return True  # "Dr. Bakaitis": a suffix such as -itis says nothing after a title
        if w in self.stop or w in self.lex.titles or w in self.lex.post_titles or self.clinical(w):
            return w in self.names and bare[0].isupper() and w not in self.stop
        if bare[0].isupper():
            return w in self.names or not self.known_word(w) or after_title
        # lowercase (nursing notes): a listed name, or a word no dictionary knows
        return w in self.names or not self.known_word(w)


class NameRecognizer(EntityRecognizer):
    """Names by title ("Dr. Smith", "dr smith"), by cue ("Pt John", "wife mary"), by
    credential ("J. Smith, RN") and by the given-name list ("Anna S.")."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.v = vocab
        super().__init__(supported_entities=["NAME"], name="NotewardNames", supported_language="en", context=[])

    def load(self) -> None:
        pass

    def _initial(self, tok: Any) -> bool:
        t = tok.text.rstrip(".")
        return len(t) == 1 and t.isupper()

    def _unknown_cap(self, tok: Any) -> bool:
        """A capitalised word no dictionary, drug list or gazetteer knows ("Nishiyama")."""
        t = tok.text
        if len(t) < 2 or not t[0].isupper() or not t.replace("-", "").replace("'", "").isalpha():
            return False
        if t.endswith("-"):
            return False  # a section label ("Gu- diuresing")
        if t.isupper() and len(t) <= 4:
            return False  # abbreviations
        w = t.lower()
        if w in self.v.names:
            return True
        return not (self.v.known_word(w) or self.v.clinical(w) or w in self.v.lex.eponyms
                    or w in self.v.lex.titles or w in self.v.places)

    def _extend(self, doc: Any, j: int, after_title: bool, limit: int = 3) -> int:
        k = j
        while k < len(doc) and k - j < limit and self.v.name_token(doc[k], after_title=after_title):
            if k > j and not self._caseless_name_word(doc[k].text):
                break  # "DR. KOWALCZYK AWARE", "NP MARGO ORDERED"
            k += 1
            if doc[k - 1].text.endswith("'s") or doc[k - 1].text.endswith("’s"):
                break
        return k

    def _proper_noun(self, doc: Any, i: int, text: str) -> bool:
        """A capitalised common Census name in mid-sentence that WordNet has only as a noun (it
        lists famous people: "signed out to Delacroix", "Renal and Kipling following").
        Not after a sentence end, line start, colon or dash (a label or a sentence start),
        and never a clinical word, eponym, title, relation word, month or day. A town of the
        same name is no bar ("Fitzgerald", "Franklin"): a place rule's LOCATION outranks it."""
        t = doc[i].text
        if not (len(t) >= 3 and t[0].isupper() and t[1:].islower() and t.isalpha()) or i == 0:
            return False
        prev = doc[i - 1]
        if prev.text in (".", "!", "?", ":", ";", "-", "--", "(", "*", "#") or "\n" in prev.text or \
                "\n" in text[prev.idx + len(prev.text) : doc[i].idx] or prev.text.endswith(".") or \
                prev.like_num:
            return False
        lw = t.lower()
        v = self.v
        # the two upper Census bands: rarer listed names are often plain nouns ("Lung", "Yard")
        return (lw in v.nouns_only and v.census.is_name(lw, 2) and not v.clinical(lw) and lw not in v.allow
                and lw not in v.lex.eponyms and lw not in v.lex.titles and lw not in v.lex.post_titles
                and lw not in v.places and lw not in _CALENDAR
                and not relation_word(lw))

    def _caseless_name_word(self, t: str, band: int = 1, any_case: bool = False) -> bool:
        """A word in all capitals or all lower case (the case says nothing) may go on a
        name only when it is no dictionary word, or a listed name of frequency ``band``
        ("SMITH", "HICKEY"; not "AWARE", "ORDERED", "early"). ``any_case``: a capital says
        nothing either (the word starts a sentence: "rn. Called", "Notified MD")."""
        bare = t.strip(".,'’")
        if len(bare) < 2 or not (any_case or bare.isupper() or bare.islower()):
            return True
        lw = bare.lower()
        return self.v.census.is_name(lw, band) or not (self.v.known_word(lw) or self.v.listed_shorthand(lw))

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        doc = getattr(nlp_artifacts, "tokens", None)
        if doc is None:
            return []
        v, lex = self.v, self.v.lex
        out: list[RecognizerResult] = []
        n = len(doc)
        letters = [c for c in text if c.isalpha()]
        # a note written mostly in lower case: there a capital in mid-sentence says "name"
        mixed_case = len(letters) >= 20 and sum(c.islower() for c in letters) >= 0.6 * len(letters)
        i = 0
        while i < n:
            tok = doc[i]
            low = tok.text.lower().rstrip(".")
            j = i + 1
            if j < n and doc[j].text == ".":
                j += 1
            found: tuple[int, int, float, bool] | None = None  # first token, end token, score, strong
            if (low in lex.titles and tok.text[:1].isalpha()
                    and not (j > i + 1 and low not in lex.abbreviated_titles)  # "his sister. Husband ..."
                    and not (low in lex.clinical_titles and j < n and not self._caseless_name_word(
                        doc[j].text, 2, any_case=j > i + 1 or tok.text.endswith(".")))):
                # "PA PRESSURES STABLE", "RN PLACED FOLEY", "ms given": abbreviations that are
                # also clinical shorthand vouch only for a word that can be a name; after their
                # full stop a capital starts a sentence ("oncoming rn. Called Dr. X")
                k = self._extend(doc, j, after_title=True)
                # "Dr. reviewed" is not a name; a lowercase word after a title must be known
                if k > j and not (doc[j].text.islower() and v.common(doc[j].text)):
                    found = (j, k, 0.9, True)
            if found is None and low in lex.person_cues:
                jj = j
                while jj < n and doc[jj].text in (":", "-", ","):
                    jj += 1
                if jj < n:
                    first = doc[jj]
                    fw = first.text.lower()
                    if low in lex.weak_person_cues:
                        ok = v.first_name(fw) or (fw in lex.surnames and first.text[:1].isupper())
                        ok = ok and (first.text[:1].isupper() or not v.common(fw))
                        if low in ("by", "said", "called") and self._unknown_cap(first):
                            ok = True  # "directed by Ogasahara", "said Maslin"
                    else:
                        ok = v.first_name(fw) or fw in lex.surnames or (
                            v.name_token(first) and not v.common(fw) and first.text[:1].isalpha()
                        )
                    if ok and not v.clinical(fw):
                        k = self._extend(doc, jj, after_title=False)
                        if k > jj:
                            found = (jj, k, 0.8, False)
            if (
                found is None
                and tok.text[:1].isupper()
                and v.first_name(low)
                and low not in lex.clinical_words
            ):
                found = (i, max(self._extend(doc, i + 1, after_title=False), i + 1), 0.75, False)
            if found is None and self._unknown_cap(tok):
                k = i
                while k < n and k - i < 4 and (self._unknown_cap(doc[k]) or self._initial(doc[k]) or (
                    doc[k].text[:1].isupper() and doc[k].text.lower() in v.names)):
                    k += 1
                dose_next = k < n and (doc[k].like_num or doc[k].text.lower() in _UNITS or doc[k].text in ("/", "["))
                if sum(1 for t in doc[i:k] if not self._initial(t)) >= 2 and not dose_next:
                    found = (i, k, 0.7, False)
            if (
                found is None
                and i + 1 < n
                and tok.text[:1].isupper()
                and tok.text.isalpha()
                and len(tok.text) >= 2
                and not tok.text.isupper()
                and (low in v.names or low in lex.ambiguous_names or self._unknown_cap(tok))
                and re.fullmatch(r"[A-Z]\.", doc[i + 1].text)
                and not (i + 2 < n and doc[i + 2].text[:1].isupper() and doc[i + 2].is_alpha
                         and doc[i + 2].text.lower() not in v.names and v.known_word(doc[i + 2].text))
            ):
                found = (i, i + 2, 0.75, False)  # "Sam L.", "Lily A."
            if found is None and mixed_case and self._proper_noun(doc, i, text):
                found = (i, max(self._extend(doc, i + 1, after_title=False), i + 1), 0.7, True)
            if (
                found is None
                and self._unknown_cap(tok)
                and i + 1 < n
                and _PERSON_VERB.match(text, doc[i + 1].idx)
            ):
                found = (i, i + 1, 0.6, False)  # "Shovda is very reliable", "Trivo lives on"
            if found is not None:
                a, b, score, strong = found
                last = doc[b - 1]
                e = last.idx + len(last.text)
                if last.text.endswith(("'s", "’s")):
                    e -= 2
                if e > doc[a].idx:
                    out.append(_result("NAME", doc[a].idx, e, score, "name_rules", strong))
                i = b
                continue
            # credentials after a name: "Mary Smith, RN" / "J Smith MD"
            if low in lex.post_titles and tok.text.isupper() and i >= 2:
                k = i - 1
                if doc[k].text == ",":
                    k -= 1
                s = k
                while s >= 0 and k - s < 3 and doc[s].text[:1].isupper() and v.name_token(doc[s], after_title=True) \
                        and self._caseless_name_word(doc[s].text, 2, any_case=True) \
                        and not (low in _AMBIGUOUS_CREDENTIALS and not _vouched_before_ambiguous(v, doc[s].text)):
                    s -= 1  # a dictionary word must be a listed name: "Called MD", "Notified MD" are verbs
                if s < k:
                    first = doc[s + 1]
                    last = doc[k]
                    out.append(_result("NAME", first.idx, last.idx + len(last.text), 0.85, "credential", True))
            i += 1
        return out


# spaCy's labels, and the names Presidio gives them before recognizers read the entities
# (engine._NER_MAPPING: GPE, LOC and FAC become LOCATION, ORG becomes ORGANIZATION).
_NER_MAP = {
    "PERSON": "NAME", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORG",
    "LOCATION": "LOCATION", "ORGANIZATION": "ORG",
}


_NEXT_EPONYM = re.compile(r"[-–]\s*([A-Za-z]+)")
_PREV_EPONYM = re.compile(r"([A-Za-z]+)\s*[-–]\s*$")


class ClinicalNerRecognizer(EntityRecognizer):
    """The NER's names and places (ORG only when it is a facility). The NER runs weights
    trained on nursing notes (``engine.trained_ner_weights``), so its spans are trusted
    but for words that are never an identifier (see ``_keep``) and places that are only
    ordinary words; eponyms used clinically are the engine's check (``eponym_span``)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.v = vocab
        fac = "|".join(re.escape(w) for w in vocab.lex.facility_words + vocab.lex.facility_names)
        self.facility_word = re.compile(rf"\b(?:{fac})\b", re.IGNORECASE)
        super().__init__(supported_entities=["NAME", "LOCATION"], name="NotewardNer", supported_language="en", context=[])

    def load(self) -> None:
        pass

    def _keep(self, tok: Any) -> bool:
        """An edge word the span keeps: the trained NER (docs/deid.md, "Trained NER") is
        trusted on nursing context ("dtr marcy", "lives in parkville"), so only words that
        are never an identifier are trimmed: punctuation, stop words, titles and clinical
        words (drugs, diseases, shorthand) that are no listed name."""
        t = tok.text
        if not any(c.isalpha() for c in t):
            return False
        w = t.lower().strip(".'’")
        if w in self.v.stop or w in self.v.lex.titles or w in self.v.lex.post_titles:
            return False
        return not (self.v.clinical(w) and w not in self.v.names)

    def _verb_after_name(self, t: str) -> bool:
        """The last word of a name in one case ("MICHAEL LIVES", "jean states") that is a
        dictionary word and neither a Census name nor a listed name: the verb after it."""
        w = t.lower()
        return (t.isupper() or t.islower()) and w.isalpha() and self.v.known_word(w) \
            and not self.v.census.is_name(w) and w not in self.v.names

    def _groups(self, text: str, nlp_artifacts: Any) -> list[tuple[str, list[Any]]]:
        """The NER's entities as (kind, tokens); the trained NER tags a place word by word
        ("Silver", "Spring"), so entities of one kind with only spaces between are one."""
        groups: list[tuple[str, list[Any]]] = []
        for ent in getattr(nlp_artifacts, "entities", None) or []:
            kind = _NER_MAP.get(ent.label_)
            if kind is None:
                continue
            if kind == "ORG":
                if not self.facility_word.search(ent.text):
                    continue
                kind = "LOCATION"
            toks = list(ent)
            if groups and groups[-1][0] == kind and toks:
                last = groups[-1][1][-1]
                gap = text[last.idx + len(last.text) : toks[0].idx]
                if gap and gap.strip(" \t") == "":
                    groups[-1][1].extend(toks)
                    continue
            groups.append((kind, toks))
        return groups

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        for kind, toks in self._groups(text, nlp_artifacts):
            while toks and not self._keep(toks[0]):
                toks.pop(0)
            while toks and not self._keep(toks[-1]):
                toks.pop()
            while kind == "NAME" and len(toks) > 1 and self._verb_after_name(toks[-1].text):
                toks.pop()
            if not toks:
                continue
            alpha = [t.text for t in toks if any(c.isalpha() for c in t.text)]
            if (kind == "LOCATION" and all(self.v.common(w) for w in alpha)
                    and " ".join(alpha).lower() not in self.v.us_places
                    and not any(w.lower() in self.v.places for w in alpha)):
                continue  # "Health" of "Cigna Health", "Shield": an ordinary word that is no known place
            if kind == "LOCATION" and all(w.lower() in self.v.region_words for w in alpha):
                continue  # "from puerto rico": a state or country, which Safe Harbor keeps
            if all(w.lower().endswith(_ADJECTIVE_ENDINGS) and w.lower() not in self.v.us_places for w in alpha):
                continue  # "transferred to Neurointerventional suite": an adjective, no place or name
            start, end = toks[0].idx, toks[-1].idx + len(toks[-1].text)
            if toks[-1].text in ("'s", "’s"):
                end = toks[-1].idx
            elif text[start:end].endswith(("'s", "’s")):
                end -= 2
            if end > start:
                # a place guess gives way to a name rule on the same words ("Verses from Pinabel
                # Marcil's tales": the NER says place, two unknown capitals say person)
                out.append(_result(kind, start, end, 0.7 if kind == "NAME" else 0.68, "trained_ner", False))
        return out


def eponym_span(vocab: Vocabulary, text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is an eponym used clinically ("Parkinson disease",
    "foley placed", "Stevens-Johnson hx") rather than someone's name."""
    words = [w.lower().strip(".'’") for w in re.split(r"[\s-]+", text[start:end]) if w]
    if not words or not all(w in vocab.lex.eponyms or w.removesuffix("'s") in vocab.lex.eponyms for w in words):
        return False
    if all(w not in vocab.names for w in words):
        return True
    before = _PREV_EPONYM.search(text[max(0, start - 30) : start])
    after = _NEXT_EPONYM.match(text, end)
    if any(m and m.group(1).lower() in vocab.lex.eponyms for m in (before, after)):
        return True  # one half of "Stevens-Johnson": eponyms joined by a hyphen name a disease
    return bool(_EPONYM_CUE.match(text[end : end + 30]))


# ---- nursing-note context rules ------------------------------------------------------

_RELATION = (
    r"son|sons|dtr|dtrs|daughter|daughters|dau|wife|husband|hus|spouse|sister|sisters|sis|brother|brothers|"
    r"bro|mother|mom|father|dad|niece|nephew|grandson|granddaughter|grandaughter|grandchild|aunt|uncle|"
    r"cousin|friend|neighbor|neighbour|proxy|hcp|hcproxy|poa|sil|dil|fiance|fiancee|boyfriend|girlfriend|"
    r"companion|partner|stepson|stepdaughter|significant other|in-law|in law|emergency contact|contact person|"
    r"spokesperson"
)
# "SO" (significant other) only in capitals: in any case "so" is the conjunction ("so , i'm")
_SO = r"(?-i:SO)"
_NAME_WORD = r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z][A-Za-z'’]*)?"
_RELATION_WORD = re.compile(rf"(?i)(?:{_RELATION}|so)")


# Credentials that are more often something else in a nursing note: PT the patient, RT
# right. Before them only a listed name, or a capitalised word in a mixed-case name
# ("Kowalski PT"), is a name; an unknown word in capitals is as likely a misspelling.
_AMBIGUOUS_CREDENTIALS = frozenset({"pt", "rt"})


def _vouched_before_ambiguous(v: Vocabulary, word: str) -> bool:
    w = word.strip(".,'’")
    return v.census.is_name(w.lower()) or (w[:1].isupper() and w[1:].islower() and not v.known_word(w.lower()))


def relation_word(word: str) -> bool:
    """"son", "dtr", "grandson", "in-law": a word that names a relation, never a person."""
    return _RELATION_WORD.fullmatch(word) is not None
# grouped by first letter: case-insensitive alternatives get no first-letter shortcut
# (same matches; 0.17 -> 0.06 ms CPU per dev note)
_RELATION_NAME = re.compile(
    rf"(?i)\b(?:{_by_first_letter(_RELATION.split('|'))}|{_SO})(?:-in-law)?\b(?:\s*[,:(-]\s*|\)[ \t]+|\s+)(?:(?:is|was|named|called|\(?name)\s+)?[\"“]?"
    rf"({_NAME_WORD}(?:\s+{_NAME_WORD})?)"
)
_AND_NAME = re.compile(rf"[ \t]+(?:and|&)[ \t]+({_NAME_WORD})\b")
_NAME_BEFORE_RELATION = re.compile(
    rf"(?i)\b({_NAME_WORD}(?:\s+{_NAME_WORD})?)\s*(?:\(\s*(?:pt'?s\s+|patient'?s\s+)?(?:{_RELATION}|{_SO})\s*\)|,\s*(?:pt'?s\s+)?(?:{_RELATION}|{_SO})\b)"
)
# A name before "aware", the commonest staff cue of nursing notes: "D. TINER AWARE",
# "AUTUMN AWARE-WILL START PROTONIX", "NP RIDDLES MADE AWARE" (filler words are dropped).
_NAME_AWARE = re.compile(
    rf"(?i)(?<![\w'’/.])((?:[A-Za-z]\.?[ \t]+)?{_NAME_WORD}(?:[ \t]+{_NAME_WORD})?(?:[ \t]+(?:made|is|was))?)[ \t]+aware\b"
)
_AWARE = re.compile(r"(?i)\baware\b")
_AWARE_ROLES = frozenset("np md rn pa rt dr drs resident fellow attending intern ho".split())
_AWARE_FILLERS = frozenset("made is was were are also now all both and been be".split())


def _names_before_aware(text: str) -> Iterator[re.Match[str]]:
    """``_NAME_AWARE.finditer(text)``, tried only in the few words before each "aware"
    (the pattern tried at every letter of a note cost 0.2 ms of CPU per dev note)."""
    last = 0
    for a in _AWARE.finditer(text):
        m = _NAME_AWARE.search(text, max(last, a.start() - 80), a.end())
        if m is not None:
            yield m
            last = m.end()


# Whose home: "at louise's house", "found down at june's apartment".
_NAME_BEFORE_HOME = re.compile(
    r"(?i)\b(?:at|to|from|near|in)\s+(?:(?P<first>[a-z][a-z]+)[ \t]+)?([a-z][a-z]+)['’]s\s+"
    r"(?:house|home|place|apartment|apt|condo|trailer|farm)\b"
)
_NOT_BEFORE_CREDENTIAL = frozenset(
    "day days night nights eve evening evenings noc nocs charge primary float covering oncoming resource staff "
    "travel travelling traveling agency new the this that your my our his her unit floor team".split()
)
_CREDENTIAL_WORD = (
    r"(?:RN|R\.N\.|RRT|MD|M\.D\.|NP|PA|PA-C|SN|RPH|CRNA|LPN|PCT|LICSW|MSW|SW|CCRN|BSN|RT|PT|rn|np|rrt)\b(?![\w/-])"
)
_CREDENTIAL = re.compile(
    # the name starts at a word's start: "m Glen Burnie, MD" of "from Glen Burnie, MD" is no name
    r"(?<![A-Za-z0-9'’])((?:[A-Za-z]\.?\s+)?(?:[A-Za-z][A-Za-z'’-]+\s+)?(?:[A-Za-z]\.\s*)?[A-Za-z][A-Za-z'’-]+)"
    # the credential may stand in brackets: "ellery (np)"
    r"\s*,?\s*(?:\(\s*)?\b(?:(?:BSN|bsn|MSN|msn|RN|rn)\s*[/,]\s*)?" + _CREDENTIAL_WORD
)
# Every _CREDENTIAL match ends in a credential word and holds only these characters, so
# it lies inside one run of them that holds a credential word (see _credentials).
_CREDENTIAL_TAIL = re.compile(_CREDENTIAL_WORD)
_CREDENTIAL_RUN = re.compile(r"[A-Za-z'’.,/(\s-]+")


def _credentials(text: str) -> Iterator[re.Match[str]]:
    """``_CREDENTIAL.finditer(text)``, searching only the runs of name and credential
    characters that hold a credential word (most of a note holds none): the full
    pattern tried at every letter took 0.6 ms of CPU per dev note, this 0.09."""
    tails = [m.start() for m in _CREDENTIAL_TAIL.finditer(text)]
    if not tails:
        return
    for run in _CREDENTIAL_RUN.finditer(text):
        i = bisect.bisect_left(tails, run.start())
        if i < len(tails) and tails[i] < run.end():
            # one character past the run, so that the final \b and (?![\w/-]) see it
            yield from _CREDENTIAL.finditer(text, run.start(), run.end() + 1)


# "Pager 83554", "pgr 555-1234", and a one- or two-digit exchange: "Pager 4-1823"
_PAGER = re.compile(
    r"(?i)\b(?:pager|pgr|beeper|bpr|page|pg)\b\s*(?:#|number|num|no\.?)?\s*[:#]?\s*(\d{3,6}(?:-\d{4})?|\d{1,2}-\d{4})\b"
)
_PLACE_VERB = re.compile(
    r"(?i)\b(?:(?P<work>works?|worked|working)|transferr?(?:ed|ing)?|trans|xfer(?:red)?|tx(?:'d|d)?|t/f|admitted|"
    r"adm|admit|sent|medflight(?:ed)?|flown|arrived|came|coming|taken|return(?:ed|ing)?|retired|lives|lived|living|"
    r"resides?|resided|visiting|vacationing|went|go(?:ing)?|seen|followed|discharged|d/c'?d?|home)"
    r"\s+(?:back\s+|alone\s+|nearby\s+|close\s+by\s+|today\s+|tomorrow\s+|here\s+|there\s+)?"
    # "lives w/ husband in essex", "lives with her daughter in Towson"
    rf"(?:(?:with|w/)\s*(?:his\s+|her\s+|their\s+)?(?:{_RELATION}|{_SO})\s+)?"
    # "for" only after a work verb ("works for vista health"); elsewhere it says why ("sent for CTA")
    r"(?:to|from|in|at|@|with|(?(work)for|(?!)))\s+(?:the\s+)?"
)
# A bare place after a preposition: "to GH cath lab", "from quartermain 3" (the word
# must be unknown to every word list, see NursingContextRecognizer._bare_place_word).
_PLACE_PREP = re.compile(r"(?i)(?<![\w/])(?:to|from|at|in|@)\s+(?:the\s+)?([A-Za-z][A-Za-z'’-]*)\b(?![/:])")
# Two or three words after a preposition, read without consuming them (a town: "from ocean city").
_WORLD_PLACE = re.compile(r"(?<![\w/])(?P<prep>from|in)[ \t]+(?=([a-z][a-z'’-]{3,})\b(?![ \t]*-))")
_BEFORE_SERVICE = re.compile(
    r"(?i)\b((?:[a-z][a-z'’-]*[ \t]+){0,2}[a-z][a-z'’-]*)(?P<county>[ \t]+county)?[ \t]+"
    r"(?:police|pd|fire[ \t]+(?:dept|department|co|company)|fd|ems|medics|ambulance|sheriff'?s?|rescue|paramedics)\b"
)
_PREP_PHRASE = re.compile(
    r"(?i)(?<![\w/])(?:from|in|to|at|near|of)[ \t]+(?:the[ \t]+)?(?=([A-Za-z][A-Za-z'’-]*(?:[ \t]+[A-Za-z][A-Za-z'’-]*){1,2}))"
)


_DETERMINERS = frozenset(
    "a an the all this that these those every each whole same next last other some any no most per of his her "
    "their my our your".split()
)


def _word_before(text: str, start: int) -> str:
    """The word just before ``start`` (spaces and tabs between), as written, or ''."""
    m = re.search(r"([A-Za-z]+)[ \t]*$", text[max(0, start - 30) : start])
    return m.group(1) if m else ""


def _mid_sentence(text: str, start: int) -> bool:
    """In running prose: a lower-case word, a comma or an opening bracket just before
    ``start`` (not a sentence end, line start, colon or list mark, and not another
    capitalised word: "Assessment of Respiratory Effort:" is a heading)."""
    before = text[max(0, start - 40) : start].rstrip(" \t")
    if before[-1:] in (",", "("):
        return True
    word = _word_before(text, start)
    return bool(word) and word.islower()


def _medical_center_initials(v: Any, w: str) -> bool:
    """Initials ending in MC name a medical center ("at GBMC", "from ummc"): 3-5 letters,
    one case, no dictionary or shorthand word."""
    lw = w.lower()
    return 3 <= len(lw) <= 5 and lw.isalpha() and lw.endswith("mc") and (w.isupper() or w.islower()) \
        and not v.known_word(lw) and not v.shorthand(lw) and lw not in v.allow and not v.clinical(lw)


_NEXT_TITLE_WORD = re.compile(r"[ \t]+[A-Z][a-z]{2,}")


def _acronym_in_mixed_case(text: str, start: int, end: int) -> bool:
    """A word of 4+ capitals in text that is otherwise written in mixed case is an
    acronym ("in ALLHAT"); in a note written all in capitals it says nothing."""
    word = text[start:end]
    if not word.isupper() or len(word) < 4:
        return False
    around = text[max(0, start - 40) : start] + text[end : end + 40]
    return any(c.islower() for c in around)


_WORD_ENDINGS = (
    "ate", "ation", "ion", "ese", "ize", "ise", "pnea", "emia", "ia", "itis", "osis", "ectomy", "otomy",
    "ostomy", "plasty", "scopy", "gram", "graphy", "ine", "ide", "ol", "il", "ed", "ing", "ly", "al", "ic",
    "ous", "ive", "ment", "ness", "able", "ible", "ure", "ity", "ism", "ist", "ant", "ent", "ary", "ory",
)
# Endings of English adjectives and fields that no place or name has ("Interventional",
# "Neurointerventional", "Endocrinological"): an unlisted capitalised word with one is a word.
_ADJECTIVE_ENDINGS = ("ional", "ative", "ology", "ological", "ical", "ically", "istic")
_PREFIXES = ("re", "de", "un", "over", "under", "pre", "post", "non", "dis", "mis", "sub", "hyper", "hypo", "in", "tele")
# A building or ward then its floor: "quartermain 2" (the word as for _PLACE_PREP).
_PLACE_FLOOR = re.compile(
    r"(?<![\w/])([A-Za-z]{6,})[ \t]+\d{1,2}(?=[ \t]*(?:$|[.,;)](?!\d)|\n|(?i:this|when|today|tomorrow|in\s+am|if)\b))", re.M
)
# A place named by its facility word in any case: "sacred heart hosp", "x rehab facility".
_FACILITY_ANYCASE = re.compile(
    r"(?i)\b((?:[a-z][a-z'’-]*[ \t]+){0,2}[a-z][a-z'’-]*)[ \t]+(?:hosp|hospital|rehab|campus|"
    r"building|bldg|medical\s+center|memorial|nursing\s+home|health\s+center|"
    r"retirement\s+(?:community|home|village)|senior\s+living|manor|church)\b"
)
_FACILITY_GENERIC = frozenset(
    "the a an this that his her their our your another other outside local area nearby acute cardiac pulmonary "
    "inpatient outpatient general community state county psych psychiatric rehab short long term care "
    "subacute sub-acute skilled to from at in of for and or with by on same new old best good better university "
    "regional medical teaching private public nearest closest".split()
)
_TREATED_WITH = re.compile(r"(?i)(?:tx|trans)\b[\s\S]*\bwith\s+(?:the\s+)?$")
# Last words of an organisation's name: "kelmar health", "pellworth insurance".
_ORG_SUFFIXES = frozenset(
    "health healthcare care systems system group inc corp corporation company co services bank insurance "
    "associates partners solutions technologies foods motors steel industries logistics construction "
    "enterprises hospital hospitals university college school schools".split()
)
_PLACE_TOKENS = re.compile(r"([A-Za-z][A-Za-z'’.-]*)(?:\s+([A-Za-z][A-Za-z'’.-]*))?(?:\s+([A-Za-z][A-Za-z'’.-]*))?")
_SAINT = re.compile(r"(?i)\b(?:st\.?|saint|mt\.?|mount)\s+([a-z]+(?:['’]s)?)\b")
_U_OF = re.compile(r"\b(?:U|Univ\.?|University)\s+(?:of\s+)?([A-Z][A-Za-z]+)\b")
_TITLE_NAME = re.compile(
    rf"(?i)\b(?:drs?|mr|mrs|ms|miss|dr's)\b\.?\s*({_NAME_WORD}(?:\s+(?!and\b){_NAME_WORD})?(?:\s*(?:,|and|&|/)\s*{_NAME_WORD})?)"
)
# An initial then a surname ("B. KARGAS", "J SMITH"); without a full stop, letters that
# are shorthand in notes (w/ith, r/ight, l/eft, o, c, s, p, x, v) do not start a name.
# (an initial and its surname share a line, or a wrapped one: never across a blank line)
_INITIAL_NAME = re.compile(
    rf"(?<![\w.'’/])(?:([B-HJ-Zb-hj-z])\.[ \t]*(?:\n[ \t]*)?|([BDFGJKMQUYZ])[ \t]+(?:\n[ \t]*)?)({_NAME_WORD})"
)
_ROLES = (r"md|np|rn|pa|rrt|lpn|cna|pct|attending|resident|fellow|intern|surgeon|nurse|rt|sw|cm|case[ \t]+manager|"
          r"social[ \t]+worker")
_ROLE_NAME = re.compile(
    rf"(?i)\b(?:{_ROLES})"
    rf"\s+({_NAME_WORD})\b"  # not the letters of a code glued to a number ("MD PGY2")
)
# A role word, then a name in brackets: "nephrology fellow (ignatius)", "rt (leopold)".
_ROLE_BRACKET = re.compile(rf"(?i)\b(?:{_ROLES})[ \t]*\([ \t]*({_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)[ \t]*\)")
_OPEN_BRACKET = re.compile(r"\(")


def _role_brackets(text: str) -> Iterator[re.Match[str]]:
    """``_ROLE_BRACKET.finditer(text)``, tried only just before each bracket (0.08 ms of
    CPU per dev note at every word, 0.01 this way)."""
    last = 0
    for i in _OPEN_BRACKET.finditer(text):
        m = _ROLE_BRACKET.search(text, max(last, i.start() - 20), i.start() + 60)
        if m is not None and m.start(1) > i.start():
            yield m
            last = m.end()


# A staff label heading a line, then a colon: "Attending: Smith", "Primary RN: Carpenter".
_STAFF_LABEL = re.compile(
    # a shift may come first: "NIGHT RN: QUINCY"
    rf"(?im)^[ \t]*(?:(?:night|day|evening|eve|charge)[ \t]+(?=rn|nurse))?(?:attending|resident|fellow|intern|surgeon|anesthesiologist|nurse|primary[ \t]+(?:rn|nurse|md)|"
    rf"rn|np|pa|md|pcp|cardiologist|consultant|referring[ \t]+(?:md|physician|provider)|provider|author)"
    rf"(?:[ \t]+(?:md|physician|rn|np))?[ \t]*:[ \t]*(?:dr\.?[ \t]*)?({_NAME_WORD})\b"
)
_CUE_NAME = re.compile(
    rf"(?i)(?:\b(?:per|by|to|with|and|called|notified|paged|informed|told|spoke with|discussed with)\s+|\bw/\s*)({_NAME_WORD})"
)
# A cue then a whole name: "per carol wolfe", "with d ross", "NP grace"; the group names
# the cue so that a role word (np, rn, md) can vouch for a single given name.
_CUE_FULL_NAME = re.compile(
    rf"(?i)\b(?:(?P<role>np|rn|md|pa|rt)|per|by|with|w/|d/w|spoke\s+to|paged|notified|informed)\s+"
    rf"(?:(?P<initial>[b-hj-z]\.\s*|[bdfgjkmquyz]\s+|(?-i:[B-HJ-Z])[ \t]+))?(?P<first>{_NAME_WORD})(?:[ \t]+(?P<last>{_NAME_WORD}))?"
)
# A given name then a visit or a call: "social: frank called", "bob visited".
_NAME_VISITED = re.compile(
    rf"(?i)(?<![\w'’/])({_NAME_WORD})\s+(?:called|phoned|visited|visiting|was\s+in|in\s+to\s+visit|came\s+in|"
    rf"at\s+(?:the\s+)?bedside|updated|will\s+(?:call|visit))\b"
)
# A product name followed (within three words) by a dose: "Camila 28 Day Pack",
# "Alendronic acid 10 MG", "NITROFURANTOIN, MACROCRYSTALS 50 MG".
_DOSE_AHEAD = re.compile(
    r"(?:[,\s]+[A-Za-z/-]+){0,3}[,\s]+\d*\.?\d+(?:/\d*\.?\d+)*\s*(?:mg|mcg|ml|unt|units?|%|day\s+pack|hr|meq|mmol|actuat)\b",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"(?<![\w'’])[A-Za-z][A-Za-z'’]*(?:-[A-Za-z][A-Za-z'’]*)*(?![\w])")


class NursingContextRecognizer(EntityRecognizer):
    """Context rules for clinical shorthand: names after relationship words ("dtr
    laverne", "son Nick", "proxy suzette") and before credentials ("Q. LANDER RRT"),
    pager numbers, places after transfer verbs ("trans to GH", "lives in Catonsville"),
    US towns, and (recall point only) any name-list word or unknown capitalised word."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.v = vocab
        super().__init__(supported_entities=["NAME", "LOCATION", "PHONE"], name="NotewardNursingContext",
                         supported_language="en", context=[])
        # A town then its state, in any case: "hampton,ma", "towson maryland's".
        codes = "|".join(sorted(vocab.lex.state_codes))
        states = "|".join(re.escape(s) for s in sorted(vocab.lex.us_states, key=len, reverse=True))
        lower_codes = "|".join(c.lower() for c in sorted(vocab.lex.state_codes) if c.lower() not in vocab.stop)
        self._town_state = re.compile(
            rf"\b([A-Za-z][A-Za-z'’-]+(?:\s+[A-Za-z][A-Za-z'’-]+)?)(?:\s*,\s*(?:{codes})\b(?!-)|,(?:{lower_codes})\b(?!-)"
            rf"|,?\s+(?i:{states})(?=\b|['’]s))"
        )

    def load(self) -> None:
        pass

    def _name_word(self, w: str, after_cue: bool, surname: bool = False) -> bool:
        """Could ``w`` be (part of) a name here? After a cue a misspelling-like rare
        surname stays a name ("MORETTI (DAUGHTER)"); as the second word of a name
        (``surname``) a listed surname that is also a dictionary word does too
        ("Rita Hickey", "Patricia WAITE")."""
        lw = re.sub(r"['’]s$", "", w.lower()).strip("'’")  # "brother frank's place"
        if len(lw) < 2 or lw in self.v.stop or lw in self.v.lex.titles or lw in self.v.lex.post_titles:
            return False
        if self.v.listed_shorthand(lw) if after_cue else self.v.shorthand(lw):
            return self.v.census.is_first(lw, 2) and after_cue and not lw.endswith(("'d", "’d"))
        if self.v.census.is_first(lw) or lw in self.v.names or (surname and self.v.census.is_last(lw)):
            return True
        if after_cue and self.v.inflected_surname(lw):
            # "son costales"; many surnames are towns too ("daughters edmonson and babs")
            return True
        return not self.v.known_word(lw) and lw not in self.v.us_places

    def _second_name(self, w: str) -> bool:
        """The word after "and" in "daughters nenita and filler": a name unless a relation
        word, a cue, shorthand or a dictionary word that no name list holds."""
        lw = w.lower()
        v = self.v
        if len(lw) < 2 or lw in v.stop or _RELATION_WORD.fullmatch(lw) or lw in v.lex.person_cues \
                or lw in v.lex.titles or v.listed_shorthand(lw) or v.clinical(lw):
            return False
        return v.census.is_name(lw) or lw in v.names or not v.known_word(lw)

    def _surname_like(self, lw: str, listed: bool = False) -> bool:
        """A listed name that is no dictionary word, or a word no dictionary knows
        (``listed``: only listed shorthand rules it out, not a misspelling guess)."""
        v = self.v
        if len(lw) < 2 or lw in v.stop or lw in v.lex.titles or lw in v.lex.post_titles:
            return False
        if v.listed_shorthand(lw) if listed else v.shorthand(lw):
            return False
        if re.match(r"o['’][a-z]{3}", lw) and v.census.is_last(lw):
            return True  # O'Brien, O'Hara: in dictionaries as people
        return not v.known_word(lw) or (v.census.is_name(lw, 2) and lw in v.names)

    def _place_word(self, w: str) -> bool:
        lw = w.lower().rstrip(".")
        if len(lw) < 2 or lw in self.v.stop or lw in self.v.lex.titles:
            return False
        if w.isupper() and len(w) <= 4:
            return lw not in self.v.allow and not self.v.clinical(lw) and not self.v.known_word(lw)
        if self.v.shorthand(lw) or "." in lw:
            return False
        if lw in self.v.us_places or lw in self.v.places:
            return True
        if lw.endswith(_ADJECTIVE_ENDINGS):
            return False  # "went to Interventional Radiology": an adjective no dictionary lists
        if not w[:1].isupper() or w.isupper():  # no capital to go by: word forms and prefixes decide
            if lw.endswith(_WORD_ENDINGS) or any(lw.startswith(p) and self.v.known_word(lw[len(p):]) for p in _PREFIXES):
                return False
        return not self.v.known_word(lw)

    def _bare_place_word(self, w: str) -> bool:
        """A word after a bare preposition that can only be a place: an abbreviation
        no list knows ("GH"), or a longer word unknown to every dictionary, name list
        and shorthand list ("quartermain")."""
        lw = w.lower().strip("'’-")
        v = self.v
        if len(lw) < 2 or lw in v.stop or lw in v.lex.titles or lw in v.allow or v.clinical(lw):
            return False
        if lw in v.region_words:
            return False  # "from puerto rico": a state or country (Safe Harbor keeps it)
        if len(lw) <= 3:
            # hospitals go by initials ending in H (General / Memorial Hospital)
            return lw.endswith("h") and (w.isupper() or w.islower()) and not v.known_word(lw) \
                and lw not in v.names and not v.census.is_name(lw) and w.upper() not in v.lex.state_codes
        if _medical_center_initials(v, w):
            return True
        if len(lw) < 6 or not lw.isalpha() or lw.endswith(_WORD_ENDINGS):
            return False  # "extubate", "cardioversion", "tachypnea": English or clinical word forms
        if any(lw.startswith(p) and v.known_word(lw[len(p):]) for p in _PREFIXES):
            return False  # "recheck", "desaturate", "overventilation"
        if v.run_together(lw) or v.abbreviation(lw):
            return False  # "breathsounds", "norepi", "periph"
        return not v.known_word(lw) and not v.shorthand(lw) and not v.census.is_name(lw) \
            and lw not in v.names and lw not in v.lex.eponyms

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        self._name_rules(text, out)
        self._place_rules(text, out)
        self._word_rules(text, out)
        return out

    def _name_rules(self, text: str, out: list[RecognizerResult]) -> None:
        v = self.v
        pos = 0
        while (m := _RELATION_NAME.search(text, pos)) is not None:
            words = list(re.finditer(_NAME_WORD, m.group(1)))
            keep: list[re.Match[str]] = []
            for w in words:
                if _RELATION_WORD.fullmatch(w.group(0)) or \
                        not self._name_word(w.group(0), after_cue=True, surname=bool(keep)):
                    break  # "proxy (son) dmitri": the bracketed relation word is a cue, not a name
                keep.append(w)
            # no name: search again from the word after the cue, which may be a cue itself
            # ("hcp is niece rosemary", "HCP (brother Ed)")
            pos = m.end() if keep else m.start(1)
            if keep:
                s = m.start(1) + keep[0].start()
                e = m.start(1) + keep[-1].end()
                if text[e - 2 : e] in ("'s", "’s"):
                    e -= 2
                out.append(_result("NAME", s, e, 0.85, "relation_name", True))
                cue = text[m.start() : m.start(1)].split()[0].lower().rstrip(",:(-")  # the relation word
                nxt = _AND_NAME.match(text, e)
                if nxt and cue.endswith("s") and cue not in ("sis", "hus") and self._second_name(nxt.group(1)):
                    # a plural relation word lists two: "daughters nenita and filler"
                    out.append(_result("NAME", nxt.start(1), nxt.end(1), 0.8, "relation_name", True))
        for m in _NAME_BEFORE_HOME.finditer(text):
            lw = m.group(2).lower()
            lf = (m.group("first") or "").lower()
            if lf and lf not in v.stop and not _RELATION_WORD.fullmatch(lf) and v.census.is_first(lf) \
                    and not v.listed_shorthand(lf) and (v.census.is_last(lw) or not v.known_word(lw)):
                # first and last name: "at seymour black's house"
                out.append(_result("NAME", m.start("first"), m.end(2), 0.8, "name_before_home", True))
            elif not _RELATION_WORD.fullmatch(lw) and lw not in v.lex.person_cues and \
                    (v.census.is_first(lw) or not v.known_word(lw)) and self._name_word(m.group(2), after_cue=True):
                out.append(_result("NAME", m.start(2), m.end(2), 0.8, "name_before_home", True))
        for m in _NAME_BEFORE_RELATION.finditer(text):
            words = list(re.finditer(_NAME_WORD, m.group(1)))
            keep = []
            for i, w in reversed(list(enumerate(words))):
                surname = i > 0 and self.v.census.is_first(words[i - 1].group(0)) and \
                    not self.v.listed_shorthand(words[i - 1].group(0).lower())
                if not self._name_word(w.group(0), after_cue=True, surname=surname):
                    break
                before = words[i - 1].group(0).lower() if i > 0 else _word_before(text, m.start(1)).lower()
                if not surname and w.group(0).islower() and v.known_word(w.group(0).lower()) and before in _DETERMINERS:
                    break  # "at bedside all day, son mike": a noun ending the clause, not a name
                keep.insert(0, w)
            if keep:
                out.append(_result("NAME", m.start(1) + keep[0].start(), m.start(1) + keep[-1].end(), 0.85,
                                   "relation_name", True))
        for m in _credentials(text):
            words = list(_WORD_RE.finditer(m.group(1)))
            keep = []
            ambiguous = text[m.end(1):m.end()].strip(" ,").lower() in _AMBIGUOUS_CREDENTIALS
            # an initial before the surname vouches for a surname that WordNet lists as a
            # famous person, a noun only ("K.Delacroix,RN")
            initial = len(words) >= 2 and len(words[0].group(0)) == 1
            for w in reversed(words):
                t = w.group(0)
                if len(t) == 1 and t.isalpha():
                    keep.insert(0, w)
                    continue
                lw = t.lower()
                good = (v.census.is_name(lw) or not v.known_word(lw) or (
                    initial and t[:1].isupper() and lw in v.nouns_only and not v.clinical(lw)
                )) and not v.listed_shorthand(lw) and lw not in v.stop
                if ambiguous and not _vouched_before_ambiguous(v, t):
                    good = False  # "SPOKE WTIH PT": PT is the patient
                if lw in _NOT_BEFORE_CREDENTIAL:
                    good = False  # "by day rn", "charge RN"
                if t.islower() and not v.census.is_name(lw) and (len(lw) < 4 or v.shorthand(lw)):
                    good = False  # lower-case: a listed name, or an unknown word of 4+ letters
                if not good:
                    break
                keep.insert(0, w)
            if text[m.end(1):m.end()].strip(" ,") in ("MD", "M.D.") and any(
                    " ".join(w.group(0) for w in words[-k:]).lower() in v.us_places for k in (1, 2, 3)):
                continue  # "from Middle River, MD": a town and its state (the place rules' work)
            if keep and any(len(w.group(0)) > 1 for w in keep):
                s = m.start(1) + keep[0].start()
                e = m.start(1) + keep[-1].end()
                out.append(_result("NAME", s, e, 0.9, "credential_name", True))
        for m in _names_before_aware(text):
            words = list(re.finditer(_NAME_WORD, m.group(1)))
            while words and words[-1].group(0).lower() in _AWARE_FILLERS:
                words.pop()
            if len(words) >= 2 and words[-2].group(0).lower() in _AWARE_ROLES:
                lw = words[-1].group(0).lower()
                if v.census.is_name(lw) and lw not in v.stop and not v.listed_shorthand(lw) and not v.clinical(lw):
                    # a role word, a name, "aware": the name may be a dictionary word ("NP gentile made aware")
                    out.append(_result("NAME", m.start(1) + words[-1].start(), m.start(1) + words[-1].end(), 0.8,
                                       "aware_name", True))
                    continue
            keep = []
            for i in range(len(words) - 1, -1, -1):
                t = words[i].group(0)
                lw = t.lower()
                if len(t) == 1:
                    if keep and i == 0:
                        keep.insert(0, words[i])  # "D. TINER"
                    break
                prev = words[i - 1].group(0).lower() if i > 0 else ""
                surname = i > 0 and v.census.is_first(prev) and not v.listed_shorthand(prev)
                if lw in v.lex.person_cues or _RELATION_WORD.fullmatch(lw) or lw in _NOT_BEFORE_CREDENTIAL \
                        or not self._name_word(t, after_cue=True, surname=surname) or (v.known_word(lw) and not v.census.is_name(lw)):
                    break
                keep.insert(0, words[i])
            if keep and any(len(w.group(0)) > 1 for w in keep):
                out.append(_result("NAME", m.start(1) + keep[0].start(), m.start(1) + keep[-1].end(), 0.8,
                                   "aware_name", True))
        for m in _TITLE_NAME.finditer(text):
            spans: list[tuple[int, int]] = []
            # after "ms" (also morphine sulfate, mental status) a rare name that is a word is a word
            title = re.sub(r"[^a-z].*", "", m.group(0).lower(), flags=re.S)
            first_band = 2 if title in v.lex.clinical_titles else 3
            prev_end = 0
            for w in re.finditer(_NAME_WORD, m.group(1)):
                t = w.group(0)
                lw = re.sub(r"['’]s$", "", t.lower())
                if lw in ("and",):
                    continue
                caseless = t.isupper() or t.islower()
                joined = bool(spans) and re.search(r"[,&/]|\band\b", m.group(1)[prev_end : w.start()])
                prev_end = w.end()
                if joined and caseless and v.known_word(lw):
                    break  # "dr. james , good to see you": a second name after a comma is no word
                # the second word of a name that only reads as an inflected word ("dr pellham
                # songer": song + er) is the surname
                inflected_surname = bool(spans) and v.inflected_surname(lw) and not v.listed_shorthand(lw)
                if not inflected_surname and (lw in v.stop or lw in v.lex.titles or lw in v.lex.post_titles or (
                    v.known_word(lw) and not v.census.is_name(lw)) or (
                    v.listed_shorthand(lw) and not v.census.is_name(lw)) or (
                    # "Dr Vining early", "ms given", "DR HUGHES NOTIFIED": a dictionary word
                    # that is a rare name, in a case that says nothing
                    caseless and v.known_word(lw) and not v.census.is_name(lw, 1 if spans else first_band))):
                    break
                if t.lower() != lw:
                    spans.append((m.start(1) + w.start(), m.start(1) + w.start() + len(lw)))
                    break
                spans.append((m.start(1) + w.start(), m.start(1) + w.end()))
            for a, b in spans:
                out.append(_result("NAME", a, b, 0.9, "title_name", True))
        for m in _INITIAL_NAME.finditer(text):
            t = m.group(3)
            lw = t.lower()
            dotted = bool(m.group(1))
            if self._surname_like(lw, listed=dotted) and not (
                t.islower() and not v.census.is_name(lw) and not (dotted and len(lw) >= 4)
            ):
                out.append(_result("NAME", m.start(), m.end(3), 0.9, "initial_name", True))
        for m in _ROLE_NAME.finditer(text):
            lw = m.group(1).lower()
            if self._surname_like(lw):
                out.append(_result("NAME", m.start(1), m.end(1), 0.8, "role_name", True))
        for m in _role_brackets(text):
            # the brackets vouch for a name that is also a word ("Leopold"), not for shorthand
            words = list(re.finditer(_NAME_WORD, m.group(1)))
            if all(self._name_word(w.group(0), after_cue=True, surname=i > 0) and not v.listed_shorthand(w.group(0).lower())
                   and (v.census.is_name(w.group(0).lower()) or not v.known_word(w.group(0).lower()))
                   for i, w in enumerate(words)):
                out.append(_result("NAME", m.start(1), m.end(1), 0.85, "role_name", True))
        for m in _STAFF_LABEL.finditer(text):
            word = m.group(1)
            lw = word.lower()
            # after the label a listed name that is also a word is the name ("NIGHT RN: QUINCY")
            if self._surname_like(lw) or (
                (v.census.is_name(lw, 2) or (word[:1].isupper() and word[1:].islower() and v.census.is_last(lw)))
                    and lw not in v.stop and not v.shorthand(lw) and not v.clinical(lw)):
                out.append(_result("NAME", m.start(1), m.end(1), 0.8, "role_name", True))
        for m in _CUE_FULL_NAME.finditer(text):
            first, last = m.group("first"), m.group("last")
            lf = first.lower()
            if lf in v.stop or v.listed_shorthand(lf) or lf in v.lex.titles or lf in v.lex.post_titles \
                    or lf in v.lex.person_cues or _RELATION_WORD.fullmatch(lf):
                continue  # "with son James": the relation word is no given name
            if m.group("initial"):
                if v.census.is_last(lf) or self._surname_like(lf, listed=True):
                    out.append(_result("NAME", m.start("initial"), m.end("first"), 0.9, "cue_name", True))
                continue
            if not v.census.is_first(lf, 2):
                if m.group("role") and v.census.is_last(lf) and (not v.known_word(lf) or v.inflected_surname(lf)):
                    # a surname after a role word: "W/MD THORESON", "np gosser"
                    out.append(_result("NAME", m.start("first"), m.end("first"), 0.85, "cue_name", True))
                continue
            ll = (last or "").lower()
            if last and ll not in v.stop and not v.listed_shorthand(ll) and (
                v.census.is_last(ll) or (len(ll) >= 3 and not v.known_word(ll))
            ):
                out.append(_result("NAME", m.start("first"), m.end("last"), 0.9, "cue_name", True))
            elif m.group("role") or not v.known_word(lf) or (
                    # a common given name that WordNet lists only as a person ("PER DAVID")
                    v.census.is_first(lf, 1) and lf in v.nouns_only and lf not in _CALENDAR):
                out.append(_result("NAME", m.start("first"), m.end("first"), 0.9, "cue_name", True))
        for m in _NAME_VISITED.finditer(text):
            lw = m.group(1).lower()
            if (len(lw) >= 3 and v.census.is_first(lw, 1) and lw not in v.stop and not v.listed_shorthand(lw)
                    and lw not in v.lex.person_cues and lw not in v.lex.titles and not _RELATION_WORD.fullmatch(lw)):
                out.append(_result("NAME", m.start(1), m.end(1), 0.9, "cue_name", True))
        for m in _CUE_NAME.finditer(text):
            t = m.group(1)
            lw = t.lower()
            if v.census.is_name(lw) and not v.known_word(lw) and not v.shorthand(lw) and lw not in v.us_places:
                out.append(_result("NAME", m.start(1), m.end(1), 0.75, "cue_name", True))

    def _place_rules(self, text: str, out: list[RecognizerResult]) -> None:
        v = self.v
        for m in _PAGER.finditer(text):
            out.append(_result("PHONE", m.start(1), m.end(1), 0.9, "pager", True))
        for m in _PLACE_VERB.finditer(text):
            num = re.match(r"\d{1,4}\s+", text[m.end() : m.end() + 6])
            t = _PLACE_TOKENS.match(text, m.end() + (num.end() if num else 0))
            if not t:
                continue
            if num and t.group(1).islower() and v.known_word(t.group(1)):
                continue  # "lives in 2 story house": a number and a word describe the home
            if _TREATED_WITH.match(m.group(0)):
                continue  # "Tx with Jevity 1.2": treatment, not a transfer
            keep_end = None
            last = 0
            for g in (1, 2, 3):
                w = t.group(g)
                if not w or not self._place_word(w):
                    break
                keep_end, last = t.end(g), g
            if last and m.group("work"):
                # an employer's name ending in an ordinary word: "works for kelmar health"
                for g in range(last + 1, 4):
                    w = t.group(g)
                    if not w or w.lower().rstrip(".,") not in _ORG_SUFFIXES:
                        break
                    keep_end = t.end(g)
            if keep_end is None and m.group("work"):
                # an employer named by ordinary words, each capitalised: "works at Home Depot"
                titled = 0
                for g in (1, 2, 3):
                    w = t.group(g)
                    if not w or not (w[:1].isupper() and w[1:].islower()) or w.lower() in v.stop \
                            or w.lower() in v.lex.titles:
                        break
                    titled = g
                if titled >= 2:
                    keep_end = t.end(titled)
            if keep_end is not None:
                e = keep_end - 1 if text[keep_end - 1] == "." else keep_end
                out.append(_result("LOCATION", t.start(1), e, 0.8, "place_after_verb", True))
        for m in _PLACE_PREP.finditer(text):
            if _NEXT_TITLE_WORD.match(text, m.end(1)):
                continue  # "from Pinabel Marcil's": two capitalised words read as a person
            if self._bare_place_word(m.group(1)) and (
                    not _acronym_in_mixed_case(text, m.start(1), m.end(1)) or _medical_center_initials(v, m.group(1))):
                out.append(_result("LOCATION", m.start(1), m.end(1), 0.7, "place_after_prep", True))
        for m in _WORLD_PLACE.finditer(text):
            # "in from montreal", "is in lagos": a city of the lexicon in lower
            # case after from/in (capitalised ones the gazetteer finds); not a given name
            lw = m.group(2).lower()
            # or, after "from", a US town that dictionaries list only as a noun ("in from
            # aberdeen"; after "in" such words are rooms and things: "ambulated in hall")
            # (a word that is also a verb or an adjective is that word: "slept in long naps")
            listed = (lw in v.city_words and (lw in v.nouns_only or not v.known_word(lw))) or (
                m.group("prep") == "from" and lw in v.us_places and lw in v.nouns_only and not lw.endswith("ing"))
            if listed and lw not in v.stop and not v.clinical(lw) and not v.census.is_first(lw, 1) \
                    and not v.listed_shorthand(lw):
                out.append(_result("LOCATION", m.start(2), m.end(2), 0.7, "world_place", True))
        for m in _BEFORE_SERVICE.finditer(text):
            # "towson police", "baltimore county ems": a town (and "county") before a public service
            words = list(re.finditer(r"[A-Za-z][A-Za-z'’-]*", m.group(1)))
            county_end = m.end("county") if m.group("county") else None
            if words and words[-1].group(0).lower() == "county":  # "baltimore county ems"
                county_end = m.start(1) + words[-1].end()
                words = words[:-1]
            for k in (3, 2, 1):
                if len(words) >= k:
                    phrase = " ".join(w.group(0) for w in words[-k:]).lower()
                    if phrase in v.us_places and not all(w.group(0).lower() in v.stop for w in words[-k:]) \
                            and not v.clinical(phrase):
                        end = county_end or m.start(1) + words[-1].end()
                        out.append(_result("LOCATION", m.start(1) + words[-k].start(), end, 0.75, "place_before_service", True))
                        break
        for m in _PREP_PHRASE.finditer(text):
            # "from ocean city", "in bel air": a town of two or three words, in any case
            words = list(re.finditer(r"[^ \t]+", m.group(1)))
            for k in (3, 2):
                if len(words) >= k:
                    phrase = " ".join(w.group(0) for w in words[:k]).lower()
                    if (phrase in v.us_places or phrase in v.city_phrases) \
                            and not all(w.group(0).lower() in v.stop for w in words[:k]):
                        out.append(_result("LOCATION", m.start(1), m.start(1) + words[k - 1].end(), 0.75,
                                           "town_after_prep", True))
                        break
        for m in _FACILITY_ANYCASE.finditer(text):
            words = list(re.finditer(r"[^\s]+", m.group(1)))
            for i in range(len(words) - 1, -1, -1):
                lw = words[i].group(0).lower()
                if lw in _FACILITY_GENERIC or lw in v.stop or lw in v.lex.titles:
                    words = words[i + 1 :]  # the name is the words nearest the facility word
                    break
            if not words:
                continue
            if all(v.listed_shorthand(w.group(0)) or w.group(0).lower() in _FACILITY_GENERIC for w in words):
                continue  # "cardiac rehab", "acute rehab"
            if len(words) == 1 and v.known_word(words[0].group(0).lower()) and \
                    words[0].group(0).lower().endswith(("ed", "ing", "ic", "ous", "ive", "al")):
                continue  # "PROLONGED HOSPITAL stay", "basic hospital": a verb or adjective form
            lw0 = words[0].group(0).lower()
            if len(words) == 1 and v.known_word(lw0) and lw0 not in v.us_places and lw0 not in v.places \
                    and not v.census.is_name(lw0) \
                    and re.search(r"(?i)\bto\s+$", text[max(0, m.start(1) - 4) : m.start(1) + words[0].start()]):
                continue  # "pt to start rehab": a verb after "to" (not "transfer to Baltimore Rehab")
            out.append(_result("LOCATION", m.start(1) + words[0].start(), m.end(), 0.75, "facility_anycase", True))
        for m in self._town_state.finditer(text):
            town = m.group(1).lower()
            start = m.start(1)
            if town not in v.us_places and " " in town:  # "in hampton,ma": the town is the last word
                start += town.rindex(" ") + 1
                town = town[town.rindex(" ") + 1 :]
            if town in v.us_places and not v.listed_shorthand(town) and town not in v.stop:
                out.append(_result("LOCATION", start, m.end(), 0.8, "town_state", True))
        for m in _PLACE_FLOOR.finditer(text):
            if re.search(r"(?i)\bvia[ \t]+$", text[max(0, m.start(1) - 5) : m.start(1)]):
                continue  # "CVP via Cordis 8": a device and its size
            lw = m.group(1).lower()
            if self._bare_place_word(m.group(1)) or (
                    # a US town that is a rare given name, then its floor: "leonia 2"
                    lw in v.us_places and not v.known_word(lw) and not v.census.is_first(lw, 1)
                    and not v.shorthand(lw) and lw not in v.stop):
                out.append(_result("LOCATION", m.start(1), m.end(1), 0.7, "place_floor", True))
        for m in _SAINT.finditer(text):
            w = m.group(1).lower().removesuffix("'s").removesuffix("’s")
            if (v.census.is_first(w) or w in v.names) and w not in v.stop:
                out.append(_result("LOCATION", m.start(), m.end(), 0.8, "saint_place", True))
        for m in _U_OF.finditer(text):
            if m.group(1).lower() in v.us_places or m.group(1).lower() in v.lex.places:
                out.append(_result("LOCATION", m.start(), m.end(), 0.8, "university", True))

    def _word_rules(self, text: str, out: list[RecognizerResult]) -> None:
        v = self.v
        words = list(_WORD_RE.finditer(text))
        for i, m in enumerate(words[:-1]):
            a, b = m.group(0).lower(), words[i + 1].group(0).lower()
            if text[m.end() : words[i + 1].start()].strip(" \t"):
                continue
            pair = f"{a} {b}"
            if pair in v.us_places and (m.group(0)[0].isupper() or not (v.known_word(a) and v.known_word(b))):
                out.append(_result("LOCATION", m.start(), words[i + 1].end(), 0.75, "us_place", True))
            elif (v.census.is_first(a) and not v.known_word(a) and not v.shorthand(a)
                  and self._surname_like(b) and b not in v.us_places):
                out.append(_result("NAME", m.start(), words[i + 1].end(), 0.75, "first_last", True))
        for i, m in enumerate(words):
            w = m.group(0)
            lw = w.lower()
            if len(lw) < 3 or lw in v.stop or v.shorthand(lw):
                continue
            if len(w) >= 4 and w[-1] == "s" and w[:-1].isupper():
                continue  # an abbreviation in the plural: "ADLs", "ABGs"
            title = w[0].isupper() and not w.isupper()
            known = v.known_word(lw)
            if lw in v.lex.eponyms:
                continue  # "Framingham score", "Lyme disease"
            if lw in v.us_places and lw not in v.names and not v.census.is_name(lw) and (
                    not known or (title and lw in v.nouns_only and _mid_sentence(text, m.start()))):
                # WordNet lists towns as nouns ("from Hagerstown"): capitalised in mid-sentence
                # such a noun is the town
                out.append(_result("LOCATION", m.start(), m.end(), 0.7, "us_place", True, recall_only=not title))
                continue
            if known and v.census.is_first(lw, 1) and lw not in v.lex.person_cues and not v.listed_shorthand(lw) \
                    and not _RELATION_WORD.fullmatch(lw) and lw not in _NOT_BEFORE_CREDENTIAL and not title:
                # recall point: a common given name is hidden even when it is also a word ("bill",
                # "LUCY"); scored above the name rules' guess so that Presidio keeps this hit
                out.append(_result("NAME", m.start(), m.end(), 0.76, "census_name", True, recall_only=True))
                nxt = words[i + 1] if i + 1 < len(words) else None
                if nxt is not None and not text[m.end() : nxt.start()].strip(" \t") and v.census.is_last(nxt.group(0)) \
                        and nxt.group(0).lower() not in v.stop and not v.listed_shorthand(nxt.group(0)):
                    out.append(_result("NAME", nxt.start(), nxt.end(), 0.76, "census_name", True, recall_only=True))
                continue
            if known or "'" in w or "’" in w or _DOSE_AHEAD.match(text, m.end()):
                continue  # dictionary words, contractions, and products before a dose
            if v.census.is_first(lw, 1) and lw not in v.us_places and not v.listed_shorthand(lw) \
                    and lw not in v.lex.person_cues and not _RELATION_WORD.fullmatch(lw):
                # a common given name that is no dictionary word is a name without a cue ("LUCY IS OFF")
                out.append(_result("NAME", m.start(), m.end(), 0.55, "census_name", True))
            elif v.census.is_name(lw) or lw in v.names:
                out.append(_result("NAME", m.start(), m.end(), 0.55, "census_name", True, recall_only=True))
            elif title and len(lw) >= 4 and re.search(r"[aeiouy]", lw) and not lw.endswith(_ADJECTIVE_ENDINGS):
                out.append(_result("NAME", m.start(), m.end(), 0.5, "unknown_word", True, recall_only=True))
