"""Kinds of clinical writing that are not PHI, removed by general rules rather than by
listing words (issue 12, third round). Table-driven, on the real spaCy/Presidio pipeline;
every text is invented in the style of ICU nursing notes, none is quoted from a dev note.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deid.conftest import covering

NOT_PHI = [
    # text, words that must stay, kind
    ("Stable.   Id- Afeb on vanco.", "Id- Afeb", "section label ending in a hyphen"),
    (
        "Labs sent.   Resp- Sxn for thick secretions.",
        "Resp- Sxn",
        "section label ending in a hyphen",
    ),
    ("0700.   Neuro- Perrla, follows commands.", "Neuro-", "section label ending in a hyphen"),
    (
        "Mother at bedside. Sister. Husband visited at noon.",
        "Husband",
        "a full stop after a word title",
    ),
    ("NP LUCILLE ORDERED BLOOD. PA PRESSURES HIGHER.", "PRESSURES HIGHER", "PA: pulmonary artery"),
    (
        "NP LUCILLE ORDERED BLOOD. PA PRESSURES HIGHER.",
        "ORDERED BLOOD",
        "caseless word after a name",
    ),
    ("DR. ZELINSKI AWARE OF BP.", "AWARE", "caseless word after a name"),
    ("FiO2 weaned on PSV 12/5/40% with good ABG.", "12/5/40", "ventilator settings, not a date"),
    (
        "PS decreased to 8 with adequate TVs 400.",
        "with adequate TVs",
        "measurements, not a house number",
    ),
    ("no change in secretionswith suctioning.", "secretionswith", "two words run together"),
    ("weaned from phenyl overnight", "phenyl", "a clipped drug name"),
    ("Neuro: Lethargc but arousable.", "Lethargc", "misspelt word at a sentence start"),
    ("BP stable. Argatroban started this am.", "Argatroban", "drug list"),
    ("BP stable. Bivalirudin started this am.", "Bivalirudin", "drug list"),
    ("BP stable. Cefepmie started this am.", "Cefepmie", "misspelt drug at a sentence start"),
]


@pytest.mark.parametrize("text,needle,kind", NOT_PHI)
def test_clinical_writing_is_not_phi(deid: Any, text: str, needle: str, kind: str) -> None:
    assert covering(deid, text, needle) == [], (kind, deid.analyze(text))


STILL_PHI = [
    # text, PHI, type: the same cues still find names, places and dates
    ("NP LUCILLE ORDERED BLOOD.", "LUCILLE", "NAME"),
    ("DR. ZELINSKI AWARE OF BP.", "ZELINSKI", "NAME"),
    ("Case reviewed with dr. grulke today.", "grulke", "NAME"),
    ("Dr. Foley here to see pt.", "Foley", "NAME"),
    ("Lives at 12 Main Street 4 in Springfield.", "12 Main Street", "LOCATION"),
    ("Dx with DM 7/81, on insulin.", "7/81", "DATE"),
    ("Seen in clinic 3/14/19 for f/u.", "3/14/19", "DATE"),
    ("transferred from quellbrook 3 this am", "quellbrook", "LOCATION"),
]


@pytest.mark.parametrize("text,needle,etype", STILL_PHI)
def test_cues_still_find_phi(deid: Any, text: str, needle: str, etype: str) -> None:
    hits = covering(deid, text, needle)
    assert hits and hits[0].type == etype, (text, deid.analyze(text))


WORD_KINDS = [
    # method, word, expected
    ("run_together", "lasixwith", True),
    ("run_together", "sedationand", True),
    # two plain dictionary words: as likely a place or a surname ("Greenbrook") as a typo
    ("run_together", "greenbrook", False),
    ("run_together", "urineoutput", False),
    ("abbreviation", "norepin", True),
    ("abbreviation", "periph", True),
    ("abbreviation", "quellbrook", False),
    ("clinical", "argatroban", True),
    ("clinical", "bivalirudin", True),
]


@pytest.mark.parametrize("method,word,expected", WORD_KINDS)
def test_word_kinds(deid: Any, method: str, word: str, expected: bool) -> None:
    from noteward.deid.engine import _shared

    vocab = _shared["vocab"]
    assert getattr(vocab, method)(word) is expected


def test_a_drug_that_is_a_given_name_stays_a_name(deid: Any) -> None:
    """ "Allegra" is a drug and a given name: the drug list leaves out every listed name."""
    from noteward.deid.engine import _shared

    assert not _shared["vocab"].clinical("allegra")
    hits = covering(deid, "Daughter Allegra at bedside.", "Allegra")
    assert hits and hits[0].type == "NAME"


LONE_GIVEN_NAMES = [
    # a common given name (Census band 1) that is no dictionary word, without any cue
    ("pt states amy will bring glasses", "amy"),
    ("plan discussed, brenda agrees with transfer", "brenda"),
    ("will update pamela in am", "pamela"),
]


@pytest.mark.parametrize("text,needle", LONE_GIVEN_NAMES)
def test_lone_common_given_name_is_a_name(deid: Any, text: str, needle: str) -> None:
    hits = covering(deid, text, needle)
    assert hits and hits[0].type == "NAME", deid.analyze(text)


@pytest.mark.parametrize(
    "text,needle",
    [
        # a given name that is also a word stays a word without a cue ("heather", "bill")
        ("Spoke to case mgmt, heather off today.", "heather"),
        ("bill sent to insurance.", "bill"),
    ],
)
def test_given_name_that_is_a_word_needs_a_cue(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == [], deid.analyze(text)


@pytest.mark.parametrize(
    "text,needle",
    [
        # street names in other languages carry short words ("do", "du") and a flat number
        ("Tomomi Nishiyama lives at 86036 Rua do Arenque 1634, Goiania", "86036 Rua do Arenque"),
        ("send to 688 rue du centre 320, apt 5", "688 rue du centre"),
    ],
)
def test_house_numbers_abroad_stay_addresses(deid: Any, text: str, needle: str) -> None:
    hits = covering(deid, text, needle)
    assert hits and all(h.type == "LOCATION" for h in hits), deid.analyze(text)


def test_every_word_list_entry_is_a_word() -> None:
    """YAML reads a bare on/off/yes/no as a boolean: every list entry must stay a string."""
    import yaml

    from noteward.deid.rules import resources_dir

    data = yaml.safe_load((resources_dir() / "lexicons.yaml").read_text(encoding="utf-8"))
    bad = {
        k: [x for x in v if not isinstance(x, str)] for k, v in data.items() if isinstance(v, list)
    }
    assert not any(bad.values()), bad
