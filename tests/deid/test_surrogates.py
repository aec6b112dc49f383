"""Surrogate mode: consistent names within a patient, intervals kept, deterministic."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from noteward.core.models import Patient
from noteward.deid.surrogates import Surrogates, shift_date

SECRET = "11" * 32
P1 = Patient(id="pt_aaaa", source_id=None, name="")
P2 = Patient(id="pt_bbbb", source_id=None, name="")


@pytest.mark.parametrize(
    "value,days,expected",
    [
        ("3/4", 10, "3/14"),
        ("03/04/2022", 30, "04/03/2022"),
        ("2/4/23", -4, "1/31/23"),
        ("05-Jan-2020", 31, "05-Feb-2020"),
        ("2019-02-03 14:20", 1, "2019-02-04 14:20"),
        ("Jan 5", 1, "Jan 6"),
        ("January 5th, 2020", 27, "February 1st, 2020"),
        ("Feb 14th '23", 14, "Feb 28th '23"),
        ("March 2021", 31, "April 2021"),
        ("12-MAR-19", -12, "28-FEB-19"),
        ("2019-12-31T23:00:00Z", 1, "2020-01-01T23:00:00Z"),
    ],
)
def test_shift_date_keeps_the_form(value: str, days: int, expected: str) -> None:
    assert shift_date(value, days) == expected


def test_same_name_same_surrogate_within_a_patient(deid: Any) -> None:
    text = "John Smith was seen. Later John Smith called back. Dr. Jones agreed; Smith agreed."
    out = deid.anonymize(text, mode="surrogate", patient=P1, secret=SECRET).text
    assert "John" not in out and "Smith" not in out and "Jones" not in out
    first = out.split(" was seen")[0]
    assert out.count(first) == 2, out
    surname = first.split()[-1]
    assert out.rstrip(".").endswith(f"{surname} agreed"), out


def test_dates_keep_intervals(deid: Any) -> None:
    text = "Admitted 2021-03-01. Discharged 2021-03-15. Seen again 2021-06-01."
    res = deid.anonymize(text, mode="surrogate", patient=P1, secret=SECRET)
    real = [date.fromisoformat(e.text) for e in res.entities]
    fake = [date.fromisoformat(res.text[r.start : r.end]) for r in res.replacements]
    assert len(fake) == 3 and fake != real
    assert [(b - a).days for a, b in zip(real, real[1:], strict=False)] == [
        (b - a).days for a, b in zip(fake, fake[1:], strict=False)
    ]
    assert len({(f - r).days for f, r in zip(fake, real, strict=True)}) == 1


def test_deterministic_from_the_secret(deid: Any) -> None:
    text = "Mary Johnson, MRN 12345678, seen 3/4/2021 at Methodist Hospital; call 555-123-4567."
    a = deid.anonymize(text, mode="surrogate", patient=P1, secret=SECRET).text
    b = deid.anonymize(text, mode="surrogate", patient=P1, secret=SECRET).text
    c = deid.anonymize(text, mode="surrogate", patient=P1, secret="22" * 32).text
    d = deid.anonymize(text, mode="surrogate", patient=P2, secret=SECRET).text
    assert a == b
    assert a != c and a != d
    for phi in ("Mary", "Johnson", "12345678", "3/4/2021", "Methodist", "555-123-4567"):
        assert phi not in a


def test_no_secret_means_random_per_run(deid: Any) -> None:
    text = "Mary Johnson, MRN 12345678, seen 3/4/2021."
    outs = {deid.anonymize(text, mode="surrogate").text for _ in range(4)}
    assert len(outs) > 1


def test_offset_is_never_zero_and_within_a_year() -> None:
    offsets = {Surrogates(SECRET, f"pt_{i}").date_offset for i in range(200)}
    assert 0 not in offsets
    assert all(-365 <= o <= 365 for o in offsets)
    assert len(offsets) > 50


def test_tag_mode(deid: Any) -> None:
    res = deid.anonymize("Seen by Dr. Smith on 3/4/2021.", mode="tag")
    assert res.text == "Seen by Dr. [NAME] on [DATE]."
    for r in res.replacements:
        assert res.text[r.start : r.end] == f"[{r.type}]"


def test_bad_mode_is_a_usage_error(deid: Any) -> None:
    from noteward.core.errors import UsageError

    with pytest.raises(UsageError, match="tag"):
        deid.anonymize("x", mode="redact")


# A street named without a house number ("on Elm St.") gets a street, not a town.
@pytest.mark.parametrize("value", ["Elm St.", "N. Milton Ct", "Harford Rd", "Eastern Avenue"])
def test_a_street_without_a_number_gets_a_street(value: str) -> None:
    s = Surrogates(SECRET, P1.id)
    out = s.location(value)
    suffixes = [x.lower() for x in s.lists["street_suffixes"]]
    assert out.split()[-1].lower().rstrip(".") in suffixes and not out[:1].isdigit(), out
