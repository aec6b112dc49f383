"""The relation words before a name, grouped by first letter, change no match (issue 12).

``_RELATION_NAME`` is case-insensitive and starts with the relation words, which Python's
regex engine tried one by one at every word boundary; grouped by first letter (see
``rules._by_first_letter``) it must find exactly what the plain alternation finds."""

from __future__ import annotations

import re

from tests.conftest import require_shared

_EDGES = [
    "dtr laverne, SON Nick; Significant  other: Bob; sister-in-law Ann; in law Joe",
    "\u017fon Pat, hcproxy Mary, proxy suzette's; so is Kim; sil (Dana) called",
]


def test_grouped_relations_match_as_the_plain_alternation() -> None:
    from noteward.deid.commands import physionet_notes
    from noteward.deid.recognizers import _RELATION, _RELATION_NAME, _SO

    plain = re.compile(
        _RELATION_NAME.pattern.replace(
            _RELATION_NAME.pattern.split(r"\b(?:", 1)[1].split(")(?:-in-law)", 1)[0], f"{_RELATION}|{_SO}", 1
        )
    )
    assert plain.pattern != _RELATION_NAME.pattern
    notes = physionet_notes(require_shared("deid_dev", "physionet_dev.jsonl").parent, 400) + _EDGES
    found = 0
    for t in notes:
        a = [(m.span(), m.span(1)) for m in plain.finditer(t)]
        assert [(m.span(), m.span(1)) for m in _RELATION_NAME.finditer(t)] == a
        found += len(a)
    assert found > 20
    assert len(notes) == 402
