"""Table-driven tests, one table per recognizer family: text, the PHI substring, the
entity type it must get, and the score range."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deid.conftest import covering


def _check(deid: Any, text: str, needle: str, etype: str, lo: float, hi: float) -> None:
    hits = covering(deid, text, needle)
    assert hits, f"{needle!r} not found in {text!r}"
    e = hits[0]
    start = text.index(needle)
    assert e.start <= start and e.end >= start + len(needle), (e, needle)
    assert e.type == etype, (e, etype)
    assert lo <= e.score <= hi, (e.score, lo, hi)


DATES = [
    ("Admitted 3/4 for chest pain.", "3/4"),
    ("Seen on Jan 5 in clinic.", "Jan 5"),
    ("Surgery 05-Jan-2020, uneventful.", "05-Jan-2020"),
    ("Specimen collected 2019-02-03 14:20 by RN.", "2019-02-03 14:20"),
    ("Follow-up on 03/04/2022.", "03/04/2022"),
    ("Discharged January 5th, 2020 home.", "January 5th, 2020"),
    ("Last seen Feb 14th '23.", "Feb 14th '23"),
    ("MRI on 12-MAR-19 showed no change.", "12-MAR-19"),
    ("Started in March 2021.", "March 2021"),
    ("BORN 7/12/1948 IN CLINIC", "7/12/1948"),
    ("Colonoscopy 2/4/23 normal.", "2/4/23"),
]


@pytest.mark.parametrize("text,needle", DATES)
def test_dates(deid: Any, text: str, needle: str) -> None:
    _check(deid, text, needle, "DATE", 0.55, 1.0)


AGES = [
    ("92 yo F with CHF", "92"),
    ("A 95-year-old man presents", "95"),
    ("Pt is 101 years old.", "101"),
    ("aged 93, lives alone", "93"),
]


@pytest.mark.parametrize("text,needle", AGES)
def test_ages_over_89(deid: Any, text: str, needle: str) -> None:
    _check(deid, text, needle, "AGE_OVER_89", 0.8, 1.0)


@pytest.mark.parametrize("text", ["A 45 yo M with CHF", "89 year old woman", "Pt is 72 years old."])
def test_ages_up_to_89_stay(deid: Any, text: str) -> None:
    assert not [e for e in deid.analyze(text) if e.type == "AGE_OVER_89"]


CONTACT = [
    ("Call 555-123-4567 with results.", "555-123-4567", "PHONE", 0.8, 1.0),
    ("Cell (310) 555-1234 after 5pm", "(310) 555-1234", "PHONE", 0.8, 1.0),
    ("Fax: 650-123-4567 to PCP office", "650-123-4567", "FAX", 0.8, 1.0),
    ("Email john.doe@example.com for records", "john.doe@example.com", "EMAIL", 0.9, 1.0),
    ("Portal at https://portal.example.org/login today", "https://portal.example.org/login", "URL", 0.8, 1.0),
    ("Pump reported from 192.168.1.14 overnight", "192.168.1.14", "IP_ADDRESS", 0.8, 1.0),
]


@pytest.mark.parametrize("text,needle,etype,lo,hi", CONTACT)
def test_contact(deid: Any, text: str, needle: str, etype: str, lo: float, hi: float) -> None:
    _check(deid, text, needle, etype, lo, hi)


IDENTIFIERS = [
    ("MRN: 12345678", "12345678", "MRN"),
    ("Medical record # SC987654 reviewed", "SC987654", "MRN"),
    ("Account number 9876543210 billed", "9876543210", "ACCOUNT"),
    ("Encounter # 44512398 closed", "44512398", "OTHER_ID"),
    ("Member ID XY-345678 active", "XY-345678", "HEALTH_PLAN_ID"),
    ("SSN 123-45-6789 on file", "123-45-6789", "SSN"),
    ("Driver's license D1234567 scanned", "D1234567", "LICENSE"),
    ("License plate 7ABC123 in lot", "7ABC123", "VEHICLE_ID"),
    ("Pacemaker serial number PJN123456 interrogated", "PJN123456", "DEVICE_ID"),
    ("Fingerprint ID FP-99812 on badge", "FP-99812", "BIOMETRIC_ID"),
    ("Case ID: JH-998877", "JH-998877", "OTHER_ID"),
    ("patient id 2c9a4b1e-77f0-4b7e-9a4c-0e8f9e0d2a11 in the EHR", "2c9a4b1e-77f0-4b7e-9a4c-0e8f9e0d2a11", "OTHER_ID"),
]


@pytest.mark.parametrize("text,needle,etype", IDENTIFIERS)
def test_identifiers(deid: Any, text: str, needle: str, etype: str) -> None:
    _check(deid, text, needle, etype, 0.65, 1.0)


LOCATIONS = [
    ("Lives at 123 Main St, apt 4", "123 Main St"),
    ("Moved to Boston, MA 02115 last year", "Boston, MA 02115"),
    ("Transferred from Methodist Hospital today", "Methodist Hospital"),
    ("Followed at St. Luke's Hospital for years", "St. Luke's Hospital"),
    ("Seen at Mt. Sinai in 2020", "Mt. Sinai"),
    ("Referred to Cedar Valley Medical Center", "Cedar Valley Medical Center"),
    ("Records from Johns Hopkins received", "Johns Hopkins"),
    ("Grew up in Chicago.", "Chicago"),
    ("PO Box 1234 is the mailing address", "PO Box 1234"),
    ("Zip code: 60614", "60614"),
]


@pytest.mark.parametrize("text,needle", LOCATIONS)
def test_locations(deid: Any, text: str, needle: str) -> None:
    _check(deid, text, needle, "LOCATION", 0.6, 1.0)


NAMES = [
    ("Seen by Dr. Smith today.", "Smith", 0.85, 1.0),
    ("Discussed with Dr. Emily Clark, cardiology.", "Emily Clark", 0.85, 1.0),
    ("pt seen by dr jones this am", "jones", 0.85, 1.0),
    ("Pt John ambulating in hall", "John", 0.7, 1.0),
    ("spoke with daughter mary at bedside", "mary", 0.7, 1.0),
    ("wife susan called, updated", "susan", 0.7, 1.0),
    ("Mary Johnson presented with cough.", "Mary Johnson", 0.7, 1.0),
    ("Referred by Anna S. for follow-up", "Anna S.", 0.7, 1.0),
    ("PT JOHN SMITH SEEN BY DR KOWALSKI", "KOWALSKI", 0.85, 1.0),
    ("Note written by Karen Miller, RN", "Karen Miller", 0.7, 1.0),
    ("Corrin41 Sau887 is a 31 year-old female.", "Corrin41 Sau887", 0.85, 1.0),
    ("Tomomi Nishiyama came for a follow-up visit.", "Tomomi Nishiyama", 0.65, 1.0),
]


@pytest.mark.parametrize("text,needle,lo,hi", NAMES)
def test_names(deid: Any, text: str, needle: str, lo: float, hi: float) -> None:
    _check(deid, text, needle, "NAME", lo, hi)


def test_known_phi_from_the_patients_own_record(deid: Any) -> None:
    from noteward.core.models import Patient

    p = Patient(
        id="pt_test", source_id="abc-123-src", name="Zorbalina Quenteroth", birth_date="1950-02-03",
        details={"identifiers": [{"type": "Medical Record Number", "value": "QX7"}],
                 "telecom": ["555-000-1111"], "address": [{"line": ["9 Elm Way"], "city": "Smallville"}]},
    )
    text = "quenteroth seen; ref abc-123-src; mrn QX7; lives 9 Elm Way Smallville"
    found = {e.text.lower(): e.type for e in deid.analyze(text, patient=p)}
    assert found.get("quenteroth") == "NAME"
    assert "abc-123-src" in found
    assert found.get("qx7") == "MRN"
    assert any("smallville" in k for k in found)
    # without the record the unusual lowercase surname and short id are not known
    assert "qx7" not in {e.text.lower() for e in deid.analyze(text)}


def test_offsets_index_the_input(deid: Any) -> None:
    text = "Dr. Smith saw Mary Johnson on 3/4/2021, MRN 1234567; call 555-123-4567."
    for e in deid.analyze(text):
        assert text[e.start : e.end] == e.text
    ents = deid.analyze(text)
    assert all(a.end <= b.start for a, b in zip(ents, ents[1:], strict=False))
