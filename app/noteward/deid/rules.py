"""Load the de-identifier's rules and word lists from resources/deid (data, not code)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from noteward.core.errors import NotewardError
from noteward.deid.types import ENTITY_TYPES
from noteward.settings import resources_dir as settings_resources_dir


def resources_dir() -> Path:
    """resources/deid (see noteward.settings.resources_dir)."""
    return settings_resources_dir() / "deid"


@dataclass(frozen=True)
class Rule:
    """One regex rule: what it finds, how sure it is, and what vetoes it."""

    name: str
    entity: str
    regex: re.Pattern[str]
    score: float
    group: int = 0
    context: frozenset[str] = frozenset()
    requires_context: bool = False
    not_before: re.Pattern[str] | None = None
    not_after: re.Pattern[str] | None = None
    weak: bool = False
    recall_only: bool = False  # only the recall operating point uses it (e.g. bare years)


@dataclass(frozen=True)
class LabelledIds:
    regex: re.Pattern[str]
    label_entity: dict[str, str]
    label_finder: re.Pattern[str]
    score: float
    bare: re.Pattern[str]
    bare_score: float
    bare_not_after: re.Pattern[str] | None


@dataclass(frozen=True)
class Lexicons:
    titles: frozenset[str]
    post_titles: frozenset[str]
    person_cues: frozenset[str]
    weak_person_cues: frozenset[str]
    first_names: frozenset[str]
    ambiguous_names: frozenset[str]
    surnames: frozenset[str]
    eponyms: frozenset[str]
    clinical_words: frozenset[str]
    clinical_suffixes: tuple[str, ...]
    facility_words: tuple[str, ...]
    facility_names: tuple[str, ...]
    places: tuple[str, ...]
    state_codes: frozenset[str]
    us_states: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()
    abbreviated_titles: frozenset[str] = frozenset()
    clinical_titles: frozenset[str] = frozenset()
    measure_links: frozenset[str] = frozenset()
    place_eponyms: frozenset[str] = frozenset()
    interjections: frozenset[str] = frozenset()


def _load(name: str) -> dict[str, Any]:
    path = resources_dir() / name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotewardError(
            f"De-identification rules are missing ({path}: {exc.strerror}); reinstall Noteward."
        ) from None
    if not isinstance(data, dict):
        raise NotewardError(f"{path} is not a rules file (expected a mapping at the top).")
    return data


def _flags(spec: Any) -> int:
    flags = 0
    for f in str(spec or "").split("|"):
        f = f.strip()
        if f:
            flags |= getattr(re, f)
    return flags


def _compile(pattern: str, flags: int, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise NotewardError(f"Bad regex in de-identification rule {where}: {exc}.") from None


def _by_first_letter(alternatives: list[str]) -> str:
    """``"|".join(alternatives)`` with the alternatives grouped by their first letter,
    each group in the given order: the same matches (two groups cannot match at one
    place), but the engine tries one group per letter instead of every alternative at
    every place (case-insensitive alternatives get no first-letter shortcut)."""
    groups: dict[str, list[str]] = {}
    for alt in alternatives:
        first, second = alt[:1], alt[1:2]
        if not (first.isalpha() and first.isascii() and first.islower()) or second in "?*+{":
            return "|".join(alternatives)  # only a plain lower-case first letter is split off
        groups.setdefault(alt[0], []).append(alt[1:])
    return "|".join(f"{c}(?:{'|'.join(rest)})" for c, rest in groups.items())


@functools.lru_cache(maxsize=1)
def load_rules() -> tuple[tuple[Rule, ...], LabelledIds]:
    """The regex rules of patterns.yaml, compiled once."""
    data = _load("patterns.yaml")
    rules = []
    for spec in data.get("rules", []):
        name = spec["name"]
        if spec["entity"] not in ENTITY_TYPES:
            raise NotewardError(f"Rule {name}: unknown entity {spec['entity']!r}.")
        rules.append(
            Rule(
                name=name,
                entity=spec["entity"],
                regex=_compile(spec["regex"], _flags(spec.get("flags")), name),
                score=float(spec.get("score", 0.8)),
                group=int(spec.get("group", 0)),
                context=frozenset(str(c).lower() for c in spec.get("context", [])),
                requires_context=bool(spec.get("requires_context", False)),
                not_before=_compile(spec["not_before"], 0, name) if spec.get("not_before") else None,
                not_after=_compile(spec["not_after"], 0, name) if spec.get("not_after") else None,
                weak=bool(spec.get("weak", False)),
                recall_only=bool(spec.get("recall_only", False)),
            )
        )
    ids = data["labelled_ids"]
    label_entity: dict[str, str] = {}
    for entity, labels in ids["labels"].items():
        if entity not in ENTITY_TYPES:
            raise NotewardError(f"labelled_ids: unknown entity {entity!r}.")
        for label in labels:
            label_entity.setdefault(str(label).lower(), entity)
    alternatives = _by_first_letter(
        [
            re.escape(lab).replace(r"\ ", r"\s+")
            for lab in sorted(label_entity, key=len, reverse=True)
        ]
    )
    label_re = rf"(?<![\w#])(?P<label>{alternatives})(?![a-z])\.?"
    glue = r"(?:\s*(?:number|num|no\.?|#|id)(?![a-z]))?\s*(?:[:#=]|\bis\b|\bwas\b|\bof\b)?\s*(?:[:#=]\s*)?"
    regex = _compile(label_re + glue + ids["value"], re.IGNORECASE, "labelled_ids")
    bare = data["bare_ids"]
    labelled = LabelledIds(
        regex=regex,
        label_entity=label_entity,
        label_finder=_compile(label_re, re.IGNORECASE, "labelled_ids labels"),
        score=float(ids.get("score", 0.9)),
        bare=_compile(bare["regex"], 0, "bare_ids"),
        bare_score=float(bare.get("score", 0.7)),
        bare_not_after=_compile(bare["not_after"], 0, "bare_ids") if bare.get("not_after") else None,
    )
    return tuple(rules), labelled


@functools.lru_cache(maxsize=1)
def load_lexicons() -> Lexicons:
    """The word lists of lexicons.yaml, lower-cased into sets."""
    d = _load("lexicons.yaml")

    def s(key: str) -> frozenset[str]:
        return frozenset(str(w).lower() for w in d.get(key, []))

    places = [*d.get("us_states", []), *d.get("countries", []), *d.get("cities", [])]
    return Lexicons(
        titles=s("titles"),
        post_titles=s("post_titles"),
        person_cues=s("person_cues"),
        weak_person_cues=s("weak_person_cues"),
        first_names=s("first_names"),
        ambiguous_names=s("ambiguous_names"),
        surnames=s("surnames"),
        eponyms=s("eponyms"),
        clinical_words=s("clinical_words"),
        clinical_suffixes=tuple(str(x).lower() for x in d.get("clinical_suffixes", [])),
        facility_words=tuple(str(x).lower() for x in d.get("facility_words", [])),
        facility_names=tuple(str(x).lower() for x in d.get("facility_names", [])),
        places=tuple(str(x).lower() for x in places),
        state_codes=frozenset(str(x).upper() for x in d.get("state_codes", [])),
        us_states=tuple(str(x).lower() for x in d.get("us_states", [])),
        cities=tuple(str(x).lower() for x in d.get("cities", [])),
        abbreviated_titles=s("abbreviated_titles"),
        clinical_titles=s("clinical_titles"),
        measure_links=s("measure_links"),
        place_eponyms=s("place_eponyms"),
        interjections=s("interjections"),
    )


@functools.lru_cache(maxsize=1)
def load_surrogates() -> dict[str, list[str]]:
    """Fake names, streets, cities and facilities for surrogate mode."""
    d = _load("surrogates.yaml")
    return {k: [str(x) for x in v] for k, v in d.items() if isinstance(v, list)}
