"""Clinical shorthand, short dates and context rules on the real spaCy/Presidio pipeline.

Table-driven: each row is a text (invented, in the style of ICU nursing notes), the PHI
substring and the type it must get, at one operating point.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deid.conftest import covering

SHORT_DATES = [
    # text, PHI, point
    ("Hx: MI '92, CABG 95, s/p pacer '96.", "'92", "recall"),
    ("Hx: MI '92, CABG 95, s/p pacer '96.", "95", "recall"),
    ("Hx: MI '92, CABG 95, s/p pacer '96.", "'96", "recall"),
    ("PMHX CVA in 94 and 00 affected (R) side.", "94", "recall"),
    ("BREAST CA S/P L LUMPECTOMY IN 1983, HTN.", "1983", "recall"),
    ("Plan to extubate on 8/28 if stable.", "8/28", "default"),
    ("Dx with DM 7/81, on insulin.", "7/81", "default"),
    ("Last echo 4/97 showed EF 30%.", "4/97", "default"),
    ("Oriented x2, knows it is the 11th.", "11th", "default"),
    ("Repeat cx from 3/23 pending.", "3/23", "default"),
]

@pytest.mark.parametrize("text,needle,point", SHORT_DATES)
def test_short_dates(deid: Any, text: str, needle: str, point: str) -> None:
    start = text.index(needle)
    hits = [e for e in deid.analyze(text, point=point) if e.start <= start and e.end >= start + len(needle)]
    assert hits and hits[0].type == "DATE", (text, needle, deid.analyze(text, point=point))


@pytest.mark.parametrize("text", ["Hx: MI '92, CABG 95.", "LUMPECTOMY IN 1983"])
def test_default_point_keeps_bare_years(deid: Any, text: str) -> None:
    assert deid.analyze(text) == [], "Safe Harbor lets a bare year stay in the default view"


NOT_DATES = [
    "Weaned to CPAP 5/5 with good sats.",
    "IVF 1/2 NS at 100cc/hr.",
    "Crackles 1/3 up bilat.",
    "c/o chest pain 6/10, relieved with NTG.",
    "Shift 1900-0700 uneventful.",
    "Strength 5/5 in all extremities.",
]


@pytest.mark.parametrize("text", NOT_DATES)
def test_clinical_fractions_are_not_dates(deid: Any, text: str) -> None:
    assert not [e for e in deid.analyze(text) if e.type in ("DATE", "OTHER_ID")], deid.analyze(text)


CONTEXT = [
    # text, PHI, type
    ("Update given to dtr laverne by phone.", "laverne", "NAME"),
    ("son Nick at bedside most of the day.", "Nick", "NAME"),
    ("Health care proxy suzette aware of plan.", "suzette", "NAME"),
    ("Family: wife Irene, son Bill.", "Bill", "NAME"),
    ("MARGIE (DAUGHTER) called overnight.", "MARGIE", "NAME"),
    ("K+ repleted per dr pica.", "pica", "NAME"),
    ("Bleeding reported to Dr. Bakaitis.", "Bakaitis", "NAME"),
    ("ILEUS REMAINS AS PER B. KARGAS. NGT TO LCWS.", "KARGAS", "NAME"),
    ("Q. LANDER RRT", "LANDER", "NAME"),
    ("DAN A. FORMAN-LYONS, RRT", "FORMAN-LYONS", "NAME"),
    ("Seen by Karen Tulloch RN this am.", "Tulloch", "NAME"),
    ("Ortho resident can be reached at pager 83554.", "83554", "PHONE"),
    ("Son can be reached at 410 392 0780.", "410 392 0780", "PHONE"),
    ("PT RECENTLY ADMITTED TO GH FOR SBO.", "GH", "LOCATION"),
    ("Plan: transfer to Quartermain 2 in am.", "Quartermain", "LOCATION"),
    ("son rob lives in parkville, visits daily.", "parkville", "LOCATION"),
    ("Pt lives in Catonsville with wife.", "Catonsville", "LOCATION"),
]


@pytest.mark.parametrize("text,needle,etype", CONTEXT)
def test_context_rules(deid: Any, text: str, needle: str, etype: str) -> None:
    hits = covering(deid, text, needle)
    assert hits, f"{needle!r} not found in {text!r}"
    assert hits[0].type == etype, hits


SHORTHAND = [
    "Pt cont on mech vent, tol PS 10/5.",
    "SBP 90s, IABP 1:1, VSS overnight.",
    "OOB to chair, NKDA, foley draining clear urine.",
    "See FLOWSHEET for data. Pt rec'd percocet with good effect.",
    "RESP- LS coarse, sxn'd for thick secretions. CV- NSR.",
    "Pt recieved lasix, tollerating clears, arousable to voice.",
    "HO aware, will cont to monitor.",
]


@pytest.mark.parametrize("text", SHORTHAND)
@pytest.mark.parametrize("point", ["default", "recall"])
def test_clinical_shorthand_is_kept(deid: Any, text: str, point: str) -> None:
    assert not [e for e in deid.analyze(text, point=point) if e.type in ("NAME", "LOCATION")], (
        deid.analyze(text, point=point)
    )


def test_dr_foley_is_still_a_name(deid: Any) -> None:
    hits = covering(deid, "Plan discussed with Dr. Foley today.", "Foley")
    assert hits and hits[0].type == "NAME"


def test_unknown_point_is_a_usage_error(deid: Any) -> None:
    from noteward.core.errors import UsageError

    with pytest.raises(UsageError, match="operating point"):
        deid.analyze("text", point="fast")


# Issue 12, second round: kinds of misses on the PhysioNet dev folds, in invented words.
MORE_CONTEXT = [
    # text, PHI, type, point
    ("sister-in-law Ann Cooke in to visit.", "Cooke", "NAME", "default"),
    ('husband "frank" at bedside.', "frank", "NAME", "default"),
    ("bolus given per joyce hardy.", "hardy", "NAME", "default"),
    ("BP goal per d hale. wires intact", "hale", "NAME", "default"),
    ("nsg (k. dunn and t. o'neill) counted cash.", "o'neill", "NAME", "default"),
    ("doris m. kowalczyk bsn/rn", "doris", "NAME", "default"),
    ("INFORMED DRS SALAZAR AND KORNBLUTH.", "KORNBLUTH", "NAME", "default"),
    ("social: frank called twice overnight.", "frank", "NAME", "default"),
    ("ok to call out to bramhall 3 if stable.", "bramhall", "LOCATION", "default"),
    ("PLAN: BRAMHALL 2 WHEN BED AVAIL.", "BRAMHALL", "LOCATION", "default"),
    ("transferred from holy rosary hosp this am", "rosary", "LOCATION", "default"),
    ("she lives alone in glenburnie near her son", "glenburnie", "LOCATION", "default"),
    ("they summer in falmouth,ma most years", "falmouth", "LOCATION", "default"),
    ("labs on10/23/03 stable", "10/23/03", "DATE", "default"),
    ("cultures from 9/12-9/14 pending", "9/12-9/14", "DATE", "default"),
    ("son can be reached at 301 5551234.", "5551234", "PHONE", "default"),
    ("HOME-410 555-0199.", "555-0199", "PHONE", "default"),
    ("Discharge to Frederick Rehab tomorrow.", "Rehab", "LOCATION", "recall"),
    ("returned to OR on 4-9 for repair", "4-9", "DATE", "recall"),
    ("HX OF MI IN 1990S.", "1990S", "DATE", "recall"),
]


@pytest.mark.parametrize("text,needle,etype,point", MORE_CONTEXT)
def test_more_context_rules(deid: Any, text: str, needle: str, etype: str, point: str) -> None:
    start = text.index(needle)
    end = start + len(needle)
    hits = [e for e in deid.analyze(text, point=point) if e.start <= start and e.end >= end]
    assert hits and hits[0].type == etype, (text, needle, deid.analyze(text, point=point))


STILL_CLINICAL = [
    "Plan to extubate in am, diurese with lasix.",
    "Plan for extubation tomorrow if ABG ok.",
    "Skin care given as outlined by day rn.",
    "Cardiac: nsr in the 90s to st in the 120s.",
    "LIMA to LAD patent per cath.",
    "Haldol given with little effect.",
    "Son called twice overnight, updated.",
    "Levo titrated w/ min effect.",
]


@pytest.mark.parametrize("text", STILL_CLINICAL)
def test_clinical_words_near_the_new_cues_are_kept(deid: Any, text: str) -> None:
    assert not [e for e in deid.analyze(text) if e.type in ("NAME", "LOCATION")], deid.analyze(text)




SYNTHETIC_GUARDS = [
    # text, substring, types it must not get at the default point
    ("Kyleena 19.5 MG Intrauterine System", "Kyleena", {"NAME", "LOCATION"}),
    ("Results were presented from the ALLHAT trial.", "ALLHAT", {"NAME", "LOCATION"}),
    ("Verses from Pinabel Marcil's tales.", "Pinabel", {"LOCATION"}),
]


@pytest.mark.parametrize("text,needle,not_types", SYNTHETIC_GUARDS)
def test_new_place_rules_keep_the_synthetic_sets(deid: Any, text: str, needle: str, not_types: set[str]) -> None:
    assert not [e for e in covering(deid, text, needle) if e.type in not_types], deid.analyze(text)


def test_hospital_initials_in_capitals_are_places(deid: Any) -> None:
    hits = covering(deid, "Follow up at UCSF next month.", "UCSF")
    assert hits and hits[0].type == "LOCATION"
