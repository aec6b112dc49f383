"""The credential rule searches only the runs that hold a credential word (issue 12).

``_credentials`` must yield exactly what the full pattern's ``finditer`` yields: same
spans, same name group, same order; checked on signatures, edge characters after the
credential (digits, underscores, slashes, non-ASCII letters, the end of the text) and
on the development notes."""

from __future__ import annotations

import pytest

from tests.conftest import require_shared

_TEXTS = [
    "Q. LANDER RRT",
    "jane doe rn/np",
    "A. B. Smith, RN, BSN",
    "x RN1 y RN",
    "smith rn_ ok",
    "PA-C Jones PA-C",
    "bob, r.n. R.N. then",
    "M.D.\nDr X MD-",
    "foo\u00a0RN",
    "é RN",
    "abc RN",
    "LICSW rn/SW",
    "Seen by J. Doe, BSN/RN at 0800; K Lee RN2; mary-jo o'neil rn.",
    "RN",
    "a RN",
    "charge RN Bob Smith RN, day rn Ann; 12 PT 3 PT-4 pt Lee/PT Kim PT",
    "Kim,RN\n\nLee RN\u2019s",
]


def _same(text: str) -> bool:
    from noteward.deid.recognizers import _CREDENTIAL, _credentials

    full = [(m.span(), m.span(1)) for m in _CREDENTIAL.finditer(text)]
    return [(m.span(), m.span(1)) for m in _credentials(text)] == full


@pytest.mark.parametrize("text", _TEXTS)
def test_same_matches_as_the_full_pattern(text: str) -> None:
    assert _same(text)


def test_same_matches_on_the_development_notes() -> None:
    from noteward.deid.commands import physionet_notes

    notes = physionet_notes(require_shared("deid_dev", "physionet_dev.jsonl").parent, 400)
    assert len(notes) == 400
    assert all(_same(t) for t in notes)
