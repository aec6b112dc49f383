"""The gazetteer pattern's lookahead on first capitals changes no match (issue 12).

``PlaceRecognizer.known`` is an alternation of every listed facility and place; a
lookahead on the capitals they start with spares the alternatives at every other word
boundary. It must list every first capital and find exactly what the plain alternation
finds."""

from __future__ import annotations

import re

import pytest

from tests.conftest import require_shared


@pytest.fixture(scope="module")
def places() -> tuple[re.Pattern[str], re.Pattern[str]]:
    from noteward.deid.engine import analyzer
    from noteward.deid.recognizers import PlaceRecognizer, _title_variants

    rec = next(
        r
        for r in analyzer().registry.get_recognizers(language="en", all_fields=True)
        if isinstance(r, PlaceRecognizer)
    )
    plain = re.compile(rf"\b(?:{_title_variants(rec.lex.facility_names + rec.lex.places)})\b")
    return rec.known, plain


def test_lookahead_lists_every_first_capital(
    places: tuple[re.Pattern[str], re.Pattern[str]],
) -> None:
    known, _ = places
    ahead = re.match(r"\\b\(\?=\[([^\]]*)\]\)", known.pattern)
    assert ahead is not None
    from noteward.deid.rules import load_lexicons

    lex = load_lexicons()
    assert {p.split()[0][0].upper() for p in lex.facility_names + lex.places} <= set(ahead.group(1))


def test_same_matches_as_the_plain_alternation(
    places: tuple[re.Pattern[str], re.Pattern[str]],
) -> None:
    from noteward.deid.commands import physionet_notes

    known, plain = places
    notes = physionet_notes(require_shared("deid_dev", "physionet_dev.jsonl").parent, 400)
    notes += ["Boston, Mass General; from BOSTON to Worcester xBoston Boston's St. Louis"]
    assert all(
        [m.span() for m in known.finditer(t)] == [m.span() for m in plain.finditer(t)]
        for t in notes
    )
    assert sum(1 for t in notes for _ in plain.finditer(t)) > 0
