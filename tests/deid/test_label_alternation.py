"""The identifier labels' alternation, grouped by first letter, changes no match (issue 12).

Case-insensitive alternatives get no first-letter shortcut in Python's regex engine, so
the ~200 labels were each tried at every word start; grouped by first letter (each
group in the original order) they must match exactly as the plain alternation does."""

from __future__ import annotations

import re

from tests.conftest import require_shared

_EDGES = [
    "MRN: 1234567, mr # 12345, Medical  Record\nNo. 998877; Acct# ab12345",
    "\u017ferial 12345 \u017f/n 4444 \u212aid 12345 id: ID 12345 policy#1234 insurance id 9876",
]


def test_grouped_labels_match_as_the_plain_alternation() -> None:
    from noteward.deid.commands import physionet_notes
    from noteward.deid.rules import _by_first_letter, load_rules

    _, ids = load_rules()
    labels = [
        re.escape(lab).replace(r"\ ", r"\s+")
        for lab in sorted(ids.label_entity, key=len, reverse=True)
    ]
    grouped = _by_first_letter(labels)
    assert grouped != "|".join(labels)
    # what follows the label group: "(?![a-z])", the glue and the value
    value = "(?![a-z])" + ids.regex.pattern.split(")(?![a-z])", 1)[1]
    plain = re.compile(rf"(?<![\w#])(?P<label>{'|'.join(labels)})" + value, re.IGNORECASE)
    fast = re.compile(rf"(?<![\w#])(?P<label>{grouped})" + value, re.IGNORECASE)
    notes = physionet_notes(require_shared("deid_dev", "physionet_dev.jsonl").parent, 400) + _EDGES
    found = 0
    for t in notes:
        a = [(m.span(), m.group("label"), m.lastindex) for m in plain.finditer(t)]
        assert [(m.span(), m.group("label"), m.lastindex) for m in fast.finditer(t)] == a
        found += len(a)
    assert found > 5
    assert ids.regex.pattern == fast.pattern
