"""The phone recognizer's faster matcher finds exactly what libphonenumber's does (issue 12).

It skips candidates with fewer letters and digits than any region's shortest valid
number before parsing them; the bound is checked here against the installed metadata,
and the matches against ``PhoneNumberMatcher`` on the phone formats of every region the
recognizer searches and on nursing-note numbers."""

from __future__ import annotations

import pytest

_TEXTS = [
    "Call (617) 555-0123 or 617.555.0199, fax 617-555-0100 x204; pager 83554.",
    "UK: +44 20 7946 0958, 020 7946 0958; DE: +49 30 901820, 030 901820, 089 1234; FR 01 23 45 67 89.",
    "IN +91 98765 43210; BR (11) 91234-5678; SE 08-123 456 78; CH 044 668 18 00; 1-800-FLOWERS.",
    "AT +43 1 234; LU +352 4796; Niue +683 4002; DE short 0301234 and +49 89 12.",
    "BP 120/80, HR 98, T 98.6, RR 18, SpO2 95% 2L, ABG 7.34/50/95, I/O 1200/800, K 3.9 x2.",
    "Seen 3/14/2024 at 0600-0800; ext. 1234; #5551234; tel:+1-212-555-0147; 5551234567890123.",
    "nos 12 34 56 78 90 12 34 5 (1) (2) [3] 4-5-6-7 ９８７６５４３２１０ +1 (212) 555 0147 ext 5",
]
_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "SE", "CH")


def test_minimum_digits_is_a_lower_bound_of_every_region() -> None:
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import COUNTRY_CODES_FOR_NON_GEO_REGIONS, SUPPORTED_REGIONS

    from noteward.deid.engine import MIN_PHONE_DIGITS

    metas = [PhoneMetadata.metadata_for_region(r) for r in SUPPORTED_REGIONS]
    metas += [
        PhoneMetadata.metadata_for_nongeo_region(c) for c in COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    lengths = [m.general_desc.possible_length for m in metas if m is not None]
    assert all(lengths), "a region without possible lengths: no digit bound holds"
    assert MIN_PHONE_DIGITS <= min(min(pl) for pl in lengths)


@pytest.mark.parametrize("region", _REGIONS)
def test_same_matches_as_libphonenumber(region: str) -> None:
    from phonenumbers import PhoneNumberMatcher

    from noteward.deid.engine import phone_matcher_class

    fast = phone_matcher_class()
    for text in _TEXTS:
        want = [(m.start, m.end, m.number) for m in PhoneNumberMatcher(text, region, leniency=1)]
        got = [(m.start, m.end, m.number) for m in fast(text, region, leniency=1)]
        assert got == want
    assert any(list(PhoneNumberMatcher(t, region, leniency=1)) for t in _TEXTS)


def test_regions_share_the_candidate_search() -> None:
    """The recognizer's matchers for one text (one per region) share the search for
    candidates, which does not depend on the region; each still finds what
    libphonenumber's own matcher finds."""
    from phonenumbers import PhoneNumberMatcher

    from noteward.deid.engine import phone_matcher_class

    fast = phone_matcher_class()
    for text in _TEXTS:
        searches: dict[int, object] = {}
        for region in _REGIONS:
            want = [
                (m.start, m.end, m.number) for m in PhoneNumberMatcher(text, region, leniency=1)
            ]
            matcher = fast(text, region, leniency=1, searches=searches)
            assert [(m.start, m.end, m.number) for m in matcher] == want
        assert searches  # filled by the first region, read by the others
        assert all(k >= 0 for k in searches)
