"""Clinical PHI recognizers plugged into Presidio's AnalyzerEngine.

All patterns and word lists come from resources/deid (see rules.py). Each recognizer
emits Noteward's entity names directly and marks, in ``recognition_metadata``, whether
its hit is *strong* (a pattern or a title: never second-guessed) or *weak* (a statistical
NER or lexicon guess, which the clinical-meaning filter may drop).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from noteward.deid.rules import Lexicons, Rule, load_rules
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


def _result(entity: str, start: int, end: int, score: float, name: str, strong: bool) -> RecognizerResult:
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=score,
        analysis_explanation=None,  # type: ignore[arg-type]
        recognition_metadata={
            "rule": name,
            STRONG: strong,
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
                out.append(_result(rule.entity, start, end, score, rule.name, not rule.weak))
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
            rf"(?:\b(?:St|Mt|Saint|Mount|Ste)\.?\s+)?(?:\b{cap}\s+(?:(?:of|the|and|for|&)\s+)?){{1,5}}"
            rf"(?:{fac_words})\b(?:['’]s)?"
            rf"(?:\s+(?:of|at|in|for)\s+{cap}(?:\s+{cap}){{0,2}}|\s+(?!(?:on|in|at|and|for|with)\b)[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?(?=\s*[,.;)]|\s*$))?"
            rf"|\b(?:{fac_words})\s+(?:of|at|in|for)\s+{cap}(?:\s+{cap}){{0,3}}"
        )
        self.known = re.compile(rf"\b(?:{_title_variants(self.lex.facility_names + self.lex.places)})\b")
        codes = "|".join(sorted(self.lex.state_codes))
        self.city_state = re.compile(
            rf"\b[A-Z][a-zA-Z'’.-]+(?:\s+[A-Z][a-zA-Z'’.-]+){{0,2}},\s+(?:{codes})\b(?:\s+\d{{5}}(?:-\d{{4}})?)?"
        )
        self.saint = re.compile(r"\b(?:St|Saint|Mt|Mount)\.?[ \t]+[A-Z][a-z]+(?:['’]s)?(?![ \t]+(?:wort|[Ww]ort)\b)")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out = []
        for m in self.facility.finditer(text):
            if text[m.end() : m.end() + 1] == ":":
                continue  # a heading such as "General:"
            end = m.end()
            if text[end - 1] == "." and len(text[m.start() : end].split()[-1]) > 4:
                end -= 1  # a full stop, not an abbreviation
            out.append(_result("LOCATION", m.start(), end, 0.85, "facility", True))
        for m in self.known.finditer(text):
            out.append(_result("LOCATION", m.start(), m.end(), 0.8, "gazetteer", True))
        for m in self.city_state.finditer(text):
            out.append(_result("LOCATION", m.start(), m.end(), 0.85, "city_state", True))
        for m in self.saint.finditer(text):
            out.append(_result("LOCATION", m.start(), m.end(), 0.75, "saint", True))
        for m in self.cue.finditer(text):
            words = m.group(1).split()
            if all(self._place_word(w) for w in words):
                out.append(_result("LOCATION", m.start(1), m.end(1), 0.65, "place_cue", False))
        for m in self.house.finditer(text):
            words = (m.group(1) or m.group(2) or "").split()
            if m.group(2) and not any(
                w.lower().rstrip(".") in _STREET_WORDS or not self.v.known_word(w.lower()) for w in words
            ):
                continue  # "120 80 Sitting" is a blood pressure, not an address
            if any(w[:1].isupper() for w in words) and not any(
                self.v.clinical(w) or w.lower() in _UNITS for w in words
            ):
                out.append(_result("LOCATION", m.start(), m.end(), 0.7, "house_number", True))
        return out

    def _place_word(self, w: str) -> bool:
        lw = w.lower()
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

    def __init__(self, lex: Lexicons, english: frozenset[str], stop: frozenset[str]) -> None:
        self.lex = lex
        self.english = english
        self.stop = stop
        self.names = lex.first_names | lex.surnames
        self.places = frozenset(w for p in lex.places for w in p.split())

    def clinical(self, word: str) -> bool:
        w = word.lower().strip(".,;:'’")
        if w in self.lex.clinical_words or any(c.isdigit() for c in w):
            return True
        return len(w) > 5 and w.endswith(self.lex.clinical_suffixes)

    def known_word(self, word: str) -> bool:
        """In the dictionary, directly or as an inflected form ("appears", "diagnosed")."""
        w = word.lower().replace("’", "'")
        if w in self.english or w in self.stop:
            return True
        for suffix, repl in _INFLECTIONS:
            if w.endswith(suffix) and len(w) - len(suffix) >= 2:
                base = w[: len(w) - len(suffix)] + repl
                if base in self.english:
                    return True
        return False

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
        if not bare.replace("-", "").replace("'", "").replace("’", "").isalpha():
            return False
        w = bare.lower()
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
            k += 1
            if doc[k - 1].text.endswith("'s") or doc[k - 1].text.endswith("’s"):
                break
        return k

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        doc = getattr(nlp_artifacts, "tokens", None)
        if doc is None:
            return []
        v, lex = self.v, self.v.lex
        out: list[RecognizerResult] = []
        n = len(doc)
        i = 0
        while i < n:
            tok = doc[i]
            low = tok.text.lower().rstrip(".")
            j = i + 1
            if j < n and doc[j].text == ".":
                j += 1
            found: tuple[int, int, float, bool] | None = None  # first token, end token, score, strong
            if low in lex.titles and tok.text[:1].isalpha():
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
                while s >= 0 and k - s < 3 and doc[s].text[:1].isupper() and v.name_token(doc[s], after_title=True):
                    s -= 1
                if s < k:
                    first = doc[s + 1]
                    last = doc[k]
                    out.append(_result("NAME", first.idx, last.idx + len(last.text), 0.85, "credential", True))
            i += 1
        return out


_NER_MAP = {"PERSON": "NAME", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORG"}


class ClinicalNerRecognizer(EntityRecognizer):
    """spaCy's PERSON / GPE / LOC / FAC (and ORG only when it is a facility), with drug
    names, diseases, eponyms and ordinary words trimmed away."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.v = vocab
        fac = "|".join(re.escape(w) for w in vocab.lex.facility_words + vocab.lex.facility_names)
        self.facility_word = re.compile(rf"\b(?:{fac})\b", re.IGNORECASE)
        super().__init__(supported_entities=["NAME", "LOCATION"], name="NotewardNer", supported_language="en", context=[])

    def load(self) -> None:
        pass

    def _keep(self, tok: Any, kind: str) -> bool:
        t = tok.text
        if not any(c.isalpha() for c in t):
            return False
        w = t.lower().strip(".'’")
        if w in self.v.stop or w in self.v.lex.titles or w in self.v.lex.post_titles:
            return False
        if self.v.clinical(w) and w not in self.v.names:
            return False
        if t.islower() and self.v.common(w):
            return False
        if kind == "NAME" and w not in self.v.names and (t.islower() or self.v.common(w)):
            return False  # lowercase names come from the cue rules; "Suspected" is a word
        return not (kind == "NAME" and t.isupper() and len(t) <= 3 and w not in self.v.names)

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        out: list[RecognizerResult] = []
        for ent in getattr(nlp_artifacts, "entities", None) or []:
            kind = _NER_MAP.get(ent.label_)
            if kind is None:
                continue
            if kind == "ORG":
                if not self.facility_word.search(ent.text):
                    continue
                kind = "LOCATION"
            toks = list(ent)
            while toks and not self._keep(toks[0], kind):
                toks.pop(0)
            while toks and not self._keep(toks[-1], kind):
                toks.pop()
            if not toks:
                continue
            words = [t.text.lower().strip(".'’") for t in toks]
            start, end = toks[0].idx, toks[-1].idx + len(toks[-1].text)
            if words[-1].endswith(("'s", "’s")) or toks[-1].text in ("'s", "’s"):
                end = toks[-1].idx if toks[-1].text in ("'s", "’s") else end - 2
            if kind == "NAME" and all(w in self.v.lex.eponyms or self.v.clinical(w) for w in words):
                solo_eponym = all(w not in self.v.names for w in words)
                if solo_eponym or _EPONYM_CUE.match(text[end : end + 30]):
                    continue
            if kind == "LOCATION" and len(words) == 1 and toks[0].text.isupper() and len(words[0]) <= 4:
                continue  # abbreviations (CHF, COPD) are not places
            if end > start:
                out.append(_result(kind, start, end, 0.7, "spacy_ner", False))
        return out


def eponym_span(vocab: Vocabulary, text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is an eponym used clinically ("Parkinson disease",
    "foley placed") rather than someone's name."""
    words = [w.lower().strip(".'’") for w in re.split(r"[\s-]+", text[start:end]) if w]
    if not words or not all(w in vocab.lex.eponyms or w.removesuffix("'s") in vocab.lex.eponyms for w in words):
        return False
    if all(w not in vocab.names for w in words):
        return True
    return bool(_EPONYM_CUE.match(text[end : end + 30]))
