"""What kind of fact a word states: the vocabulary the grounding checker judges words by.

A summary sentence may reword its sources, but some words carry a fact of their own: a drug,
a condition, a procedure, a body site, a side, a person. Those must be found in the cited
sources. The checker tells them from harmless wording with:

- drug names from the ``drug-named-entity-recognition`` package (DrugBank, NHS, MeSH and
  Wikipedia names), the project's own list in ``summary_rules.json``, and the vault's own
  FHIR medication names (passed in by the caller through :func:`vocabulary_from_names`);
- condition, procedure and body-site words from ``resources/lexicon/clinical_terms.json``
  (everyday words such as "knee" or "stroke") and the vault's FHIR condition and procedure
  names;
- general English from ``wordfreq`` (Apache-2.0 code, CC BY-SA 4.0 data, installed with the
  package; nothing is downloaded): a word below :data:`KNOWN_ZIPF` that no list names is
  *unknown* and is treated as a possible drug, never as harmless — an invented
  "Nitrogentinolone" is caught because nobody knows it.
"""

from __future__ import annotations

import bz2
import importlib.util
import json
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from noteward.llm.prompts import resources_dir

# wordfreq's Zipf scale: 3.0 is about once per million words. Clinical jargon ("dyspnea"
# 2.2, "lisinopril" 1.7) falls below; everyday words ("knee" 4.3, "reports" 4.9) above.
KNOWN_ZIPF = 3.0
# a condition word from a vault name this common ("disease", "stage") states nothing
_CONDITION_MAX_ZIPF = 4.0

DRUG = "drug"
CLINICAL = "condition, procedure or body site"
UNKNOWN = "unknown word (possible drug)"

_NAME_WORD_RE = re.compile(r"[a-z]+")


@lru_cache(maxsize=1)
def clinical_terms() -> dict[str, Any]:
    """The hand-written word lists in ``resources/lexicon/clinical_terms.json``."""
    path = resources_dir() / "lexicon" / "clinical_terms.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def english_frequencies() -> Mapping[str, float]:
    """Zipf frequency of the general English words at or above :data:`KNOWN_ZIPF`
    (wordfreq's large list; about 29,000 words). Rarer words read as 0.0."""
    import wordfreq

    # the list is bucketed by centibels: bucket i holds words of frequency 10^(-i/100)
    buckets = wordfreq.get_frequency_list("en", wordlist="large")
    last = int(round((9.0 - KNOWN_ZIPF) * 100))
    return {w: 9.0 - i / 100 for i, bucket in enumerate(buckets[: last + 1]) for w in bucket}


def zipf(word: str) -> float:
    """A word's Zipf frequency in general English (0.0 below :data:`KNOWN_ZIPF`)."""
    return english_frequencies().get(word, 0.0)


# the information a word carries, on the Zipf scale: rare and unknown words weigh
# INFORMATION_MAX, everyday words little, and none less than INFORMATION_MIN
INFORMATION_MAX = 8.0
INFORMATION_MIN = 1.0
NUMBER_INFORMATION = 4.0


@lru_cache(maxsize=65536)
def information(word: str) -> float:
    """How much a normalized word says, from general English: ``INFORMATION_MAX`` minus
    its Zipf frequency ("pain" 4.9 -> 3.1, "dyspnea" or an unknown word -> 8.0, "reports"
    -> 3.1). A word absent from the sources weighs what it says in English, not the top
    idf of the index, so rewording with everyday words costs little and a missing rare
    word much. Numbers weigh ``NUMBER_INFORMATION`` (they are checked on their own)."""
    if not word[:1].isalpha():
        return NUMBER_INFORMATION
    english = english_frequencies()
    z = english.get(word, 0.0)
    if not z and not word.endswith("s"):  # plural-folded: "diabete" -> "diabetes"
        z = english.get(word + "s", 0.0)
    if not z and word.endswith("y"):
        z = english.get(word[:-1] + "ies", 0.0)
    return max(INFORMATION_MIN, INFORMATION_MAX - z)


# a word general English knows this well, though below KNOWN_ZIPF ("bothersome" 2.7,
# "exacerbation" 2.3, "intractable" 2.9), is a word, not a possible drug, unless it has
# the form of a clinical term (clinical_suffixes: "-itis", "-ectomy" ...): chosen on the
# MTS-Dialog and ACI-Bench training references. Invented names are unknown to wordfreq
# (0.0) and real drug names are drugs before this is asked.
RARE_ENGLISH_ZIPF = 2.0


@lru_cache(maxsize=65536)
def rare_english_zipf(word: str) -> float:
    """A normalized word's Zipf frequency in wordfreq's full English list (also its
    unfolded plural forms), where :func:`zipf` stops at :data:`KNOWN_ZIPF`."""
    import wordfreq

    forms = [word]
    if not word.endswith("s"):
        forms.append(word + "s")
    if word.endswith("y"):
        forms.append(word[:-1] + "ies")
    return max(wordfreq.zipf_frequency(f, "en", wordlist="large") for f in forms)


@lru_cache(maxsize=1)
def _clinical_suffixes() -> tuple[str, ...]:
    return tuple(clinical_terms()["clinical_suffixes"])


def is_plain_english(word: str) -> bool:
    """Whether a word the vocabulary calls unknown is a plain English word after all: five
    letters or more, in wordfreq at :data:`RARE_ENGLISH_ZIPF` or above, and not shaped
    like a clinical term or an anatomical adjective (``clinical_suffixes``). Such a word
    is no possible drug; coverage still weighs it by its information."""
    # abbreviations ("chf", "ppd") stay unknown: a dialogue spells them out
    if len(word) < 5 or not re.search(r"[aeiou]", word):
        return False
    if rare_english_zipf(word) < RARE_ENGLISH_ZIPF:
        return False
    # words reach here plural-folded: "diverticuliti" is "diverticulitis"
    return not (word.endswith(_clinical_suffixes()) or (word + "s").endswith(_clinical_suffixes()))


@lru_cache(maxsize=1)
def package_drug_words() -> frozenset[str]:
    """Single-word drug names from the ``drug-named-entity-recognition`` package.

    Its dictionary is read from the package's own data file (importing the package builds a
    fuzzy-match index this checker does not use, and imports requests); when a later version
    moves the file, the package's public table is used instead. Unpickling takes seconds,
    so the words are kept in the user data folder, keyed by the file's size and time.
    """
    # find_spec locates the package without importing it
    spec = importlib.util.find_spec("drug_named_entity_recognition")
    folders = list(spec.submodule_search_locations or []) if spec else []
    data = Path(folders[0]) / "drug_ner_dictionary.pkl.bz2" if folders else None
    cache = _drug_cache_file(data)
    if cache is not None and cache.exists():
        return frozenset(cache.read_text(encoding="utf-8").split())
    try:
        if data is None:
            raise FileNotFoundError("drug_named_entity_recognition")
        with bz2.open(data, "rb") as fh:
            variants: Iterable[str] = pickle.load(fh)["drug_variant_to_canonical"].keys()
    except (FileNotFoundError, KeyError, OSError):
        from drug_named_entity_recognition import drugs_finder

        variants = drugs_finder.drug_variant_to_canonical.keys()
    # one-word names only: the words of its multi-word names ("bent", "ruby", "canyon")
    # are no evidence of a drug on their own
    words = frozenset(_drug_name_words(v for v in variants if v.isalpha()))
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text("\n".join(sorted(words)) + "\n", encoding="utf-8")
            tmp.replace(cache)
        except OSError:
            pass  # a read-only data folder only costs the next process the seconds again
    return words


def _drug_cache_file(data: Path | None) -> Path | None:
    if data is None or not data.exists():
        return None
    from noteward.settings import user_data_dir

    st = data.stat()
    return user_data_dir() / "cache" / f"drug-words-{st.st_size}-{st.st_mtime_ns}-{KNOWN_ZIPF}.txt"


def _drug_name_words(names: Iterable[str]) -> Iterable[str]:
    """The distinctive words of drug names: alphabetic, 4+ letters, unknown to English."""
    for name in names:
        for w in _NAME_WORD_RE.findall(name.lower()):
            if len(w) >= 4 and zipf(w) < KNOWN_ZIPF:
                yield w


def _fold(word: str) -> str:
    # the same crude plural folding as grounding.normalize_word (kept here to stay import-free)
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Vocabulary:
    """Words the checker knows, by the kind of fact they state.

    ``drugs`` and ``clinical`` hold normalized (lower-case, plural-folded) words; a word in
    neither that general English does not know (Zipf below ``known_zipf``) is ``UNKNOWN``.
    Build one with :func:`default_vocabulary` or, adding a vault's FHIR names,
    :func:`vocabulary_from_names`.
    """

    drugs: frozenset[str]
    clinical: frozenset[str]
    english: Mapping[str, float] = field(repr=False)
    known_zipf: float = KNOWN_ZIPF

    def kind(self, word: str) -> str | None:
        """``DRUG``, ``CLINICAL``, ``UNKNOWN`` or None (harmless wording) for a normalized word."""
        if not word or not word[0].isalpha():
            return None
        if word in self.drugs:
            return DRUG
        if word in self.clinical:
            return CLINICAL
        if len(word) < 3:
            return None  # "mg", "iv", "am": too short to name anything the sources must hold
        known = self.english.get(word, 0.0) >= self.known_zipf
        # words reach here plural-folded ("diabetes" -> "diabete"): try the unfolded forms too
        if not known and not word.endswith("s"):
            known = self.english.get(word + "s", 0.0) >= self.known_zipf
        if not known and word.endswith("y"):
            known = self.english.get(word[:-1] + "ies", 0.0) >= self.known_zipf
        return None if known else UNKNOWN

    def with_names(
        self, medications: Iterable[str] = (), conditions: Iterable[str] = ()
    ) -> Vocabulary:
        """A copy that also knows these medication and condition/procedure names."""
        drugs = {_fold(w) for w in _drug_name_words(medications)}
        clinical = {
            _fold(w)
            for name in conditions
            for w in _NAME_WORD_RE.findall(name.lower())
            # "(disorder)", "(finding)" and plain English in SNOMED display names are no fact
            if len(w) >= 4
            and w not in _SNOMED_TAGS
            and self.english.get(w, 0.0) < _CONDITION_MAX_ZIPF
        }
        return Vocabulary(
            self.drugs | drugs, self.clinical | (clinical - drugs), self.english, self.known_zipf
        )


_SNOMED_TAGS = frozenset(
    "disorder finding procedure situation morphologic abnormality event regime therapy "
    "observable entity body structure qualifier value".split()
)


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    """The package drug names, the project's word lists and general English (cached).

    The first call reads the drug dictionary and the frequency list (a few seconds); later
    calls are free.
    """
    from noteward.llm.grounding import rules

    english = english_frequencies()
    terms = clinical_terms()
    # folded forms that are English words are no drug ("dids" -> "did")
    drugs = {f for f in map(_fold, package_drug_words()) if zipf(f) < KNOWN_ZIPF}
    # the project's own list holds everyday drug words too ("aspirin", "insulin")
    drugs |= {_fold(w) for n in rules()["drug_names"] for w in _NAME_WORD_RE.findall(n.lower())}
    clinical = {
        _fold(w.lower()) for key in ("body_sites", "conditions", "procedures") for w in terms[key]
    }
    return Vocabulary(frozenset(drugs), frozenset(clinical - drugs), english)


def vocabulary_from_names(
    medications: Iterable[str] = (),
    conditions: Iterable[str] = (),
    base: Vocabulary | None = None,
) -> Vocabulary:
    """The default vocabulary plus a vault's own names.

    ``medications``: FHIR MedicationRequest display names ("lisinopril 10 MG Oral Tablet");
    ``conditions``: FHIR Condition and Procedure display names. Their distinctive words are
    added, so a drug the package does not list but the vault prescribes is still a drug.
    """
    return (base or default_vocabulary()).with_names(medications, conditions)


_SUFFIXES = (
    "ations", "ation", "ically", "ities", "eries", "ments", "ness", "ment", "ings", "ical", "isms",
    "ions", "ing", "ity", "ism", "ion", "ive", "ous", "ies", "ic", "es", "ed", "ly", "al",
    "ia", "ist", "ery", "s", "e", "y",
)  # fmt: skip


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude stem, so "diabetic" finds "diabetes" and "hypertensive" finds "hypertension".

    Up to two suffixes come off, leaving at least four letters; good enough to match a word with its
    own derivations and cheap enough to run on every word of every summary sentence.
    """
    for _ in range(2):  # "lightheadedness" -> "lightheaded" -> "lighthead"
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
        else:
            break
    return word
