"""Errors found by running invented nursing lines through `noteward deid` (issue 12,
fifth round): each case is a kind of writing, not a string from a corpus."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deid.conftest import covering, types_around


@pytest.mark.parametrize("text", [
    "Family from Glen Burnie, MD.",
    "He lives in Glen Burnie, MD. Wife at bedside.",
    "Seen at clinic in Ellicott City, MD last week.",
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_no_span_starts_or_ends_inside_a_word(deid: Any, text: str, point: str) -> None:
    # "Family fro[NAME], MD.": the credential pattern took the "m" of "from" for an initial
    ents = deid.analyze(text, point=point)
    assert ents, "the town should be found"
    for e in ents:
        assert not (e.start > 0 and text[e.start - 1].isalnum() and text[e.start].isalnum()), (e, text)
        assert not (e.end < len(text) and text[e.end].isalnum() and text[e.end - 1].isalnum()), (e, text)
    assert "Family fro[" not in deid.anonymize(text).text


@pytest.mark.parametrize("text,word", [
    ("Report given to oncoming rn. Called Dr. Patel's office re: labs.", "Called"),
    ("Report given to oncoming RN. Given 2 units PRBC overnight.", "Given"),
    ("Pain controlled per NP. Started on tylenol.", "Started"),
    ("MD aware. Called MD. No new orders.", "Called"),
    ("Pt restless overnight. Notified MD. Ativan given.", "Notified"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_verb_starting_a_sentence_after_a_credential_is_kept(deid: Any, text: str, word: str, point: str) -> None:
    assert [e for e in deid.analyze(text, point=point) if word in e.text] == []


def test_the_name_after_the_sentence_start_is_still_found(deid: Any) -> None:
    text = "Report given to oncoming rn. Called Dr. Patel's office re: labs."
    assert covering(deid, text, "Patel")


@pytest.mark.parametrize("text,needle", [
    ("hcp is niece rosemary, who lives nearby.", "rosemary"),
    ("Code status discussed with HCP (brother Ed).", "Ed"),
    ("Health care proxy is son Nick.", "Nick"),
    ("sister in law maryanne updated by phone.", "maryanne"),
])
def test_a_relation_word_after_another_cue_still_names(deid: Any, text: str, needle: str) -> None:
    # the first cue's match ("hcp is niece") swallowed the second cue ("niece rosemary")
    assert covering(deid, text, needle)


@pytest.mark.parametrize("text,needle", [
    ("social: lives w/ husband in essex. 2 children.", "essex"),
    ("Lives with her daughter in Towson, retired teacher.", "Towson"),
    ("pt lives with wife in dundalk, independent at baseline.", "dundalk"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_town_after_lives_with_someone_in(deid: Any, text: str, needle: str, point: str) -> None:
    start = text.index(needle)
    hits = [e for e in deid.analyze(text, point=point) if e.start <= start and start + len(needle) <= e.end]
    assert [e.type for e in hits] == ["LOCATION"]


@pytest.mark.parametrize("text", [
    "Lives with wife in apt, independent with ADLs.",
    "Lives with daughter in law's home.",
    "Lives with husband in 2 story house.",
])
def test_lives_with_someone_in_a_home_is_not_a_place(deid: Any, text: str) -> None:
    assert [e for e in deid.analyze(text, point="recall") if e.type == "LOCATION"] == []


@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_town_before_md_is_wholly_covered(deid: Any, point: str) -> None:
    # the credential rule took "River" of "Middle River, MD" for a doctor's name, and that
    # stronger hit pushed the town's span out, leaving "Middle" bare
    text = "Son visited, drove up from Middle River, MD this am."
    start = text.index("Middle River")
    assert [e for e in deid.analyze(text, point=point) if e.start <= start and start + 12 <= e.end]


# A Census name that WordNet lists only as a noun (a famous person: "Fitzgerald",
# "Churchill", "Darwin") was an "ordinary word", so no name rule took it without a cue.
@pytest.mark.parametrize("text,needle", [
    ("Pt resting, signed out to Churchill at 1900.", "Churchill"),
    ("Renal and Darwin following, K 5.9 this am.", "Darwin"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_famous_surname_mid_sentence_in_mixed_case_is_a_name(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point)


@pytest.mark.parametrize("text,needle", [
    ("Pt has a small Lung nodule on CT, f/u outpatient.", "Lung"),
    ("Will discuss at Friday rounds with the team.", "Friday"),
    ("Pt's Son at bedside, questions answered.", "Son"),
    ("Foley draining well, Coumadin held tonight.", "Coumadin"),
    ("HEPATOLOGY: FITZGERALD SYNDROME RULED OUT.", "FITZGERALD"),
])
def test_capitalised_ordinary_words_stay(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


def test_doctors_joined_by_a_slash(deid: Any) -> None:
    text = "CCU team (Drs Weiss/Abernathy) at bedside."
    assert covering(deid, text, "Weiss") and covering(deid, text, "Abernathy")


# The trained NER's names that are also dictionary words were dropped as "ordinary
# words" (the filter was written for spaCy's news model). Out of fold, with the name
# rules off, letting Census names through at the default point and every NER name
# through at the recall point raised what the NER finds from 0.727 to 0.779 (default)
# and 0.735 to 0.816 (recall point): docs/deid.md, "Trained NER".
@pytest.mark.parametrize("text,needle", [
    ("Pt to go to Stella Maris for hospice.", "Maris"),
    ("Grace from case mgmt called re: placement.", "Grace"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_the_trained_ner_names_that_are_words(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point)


@pytest.mark.parametrize("text,word", [
    ("SON REPORTS HE'S HOH. NO SPONT RESP.", "REPORTS"),
    ("son and grandson in to visit, updated.", "grandson"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_relation_words_and_verbs_near_names_stay(deid: Any, text: str, word: str, point: str) -> None:
    assert [e for e in deid.analyze(text, point=point) if word in e.text] == []


# "PT" is a physical therapist's credential and, far more often, "patient": a misspelt
# word before it ("SPOKE WTIH PT") was taken for a therapist's name.
@pytest.mark.parametrize("text,word", [
    ("PSY-SOC: MD'S SPOKE WTIH PT AND FAMILY RE CONDITION.", "WTIH"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_misspelt_word_before_pt_is_no_therapist(deid: Any, text: str, word: str, point: str) -> None:
    assert [e for e in deid.analyze(text, point=point) if word in e.text] == []


@pytest.mark.parametrize("text,needle", [
    ("Seen by Jane Kowalski PT for gait eval.", "Kowalski"),
    ("EVAL BY M. OKAFOR, PT. PLAN FOR REHAB.", "OKAFOR"),
])
def test_a_therapist_before_pt_is_still_a_name(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle)


# A month and a year is a date element beyond the year (Safe Harbor), also with the year
# written "'02"; "Jan" of it is no person.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_month_and_apostrophe_year(deid: Any, point: str) -> None:
    text = "Hx: MI Jan '02, PPM placed 2/2001."
    start = text.index("Jan '02")
    assert [e.type for e in deid.analyze(text, point=point) if e.start <= start and start + 7 <= e.end] == ["DATE"]


# A common Census name joined by "and" to a found name is a name too, though it is a word.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_name_that_is_a_word_joined_to_a_name(deid: Any, point: str) -> None:
    text = "Faith and Hope (daughters) in to visit, updated."
    assert [e for e in deid.analyze(text, point=point) if e.start <= 0 and 5 <= e.end]


@pytest.mark.parametrize("text,word", [
    ("Dr. Smith and Family Medicine following.", "Family"),
    ("Discussed with Dr. Lee and Cardiology.", "Cardiology"),
])
def test_an_ordinary_word_joined_to_a_name_stays(deid: Any, text: str, word: str) -> None:
    assert covering(deid, text, word) == []


# A month-day with a dash after on/since/until is a date in the view too (it was recall
# only); flows and doses after it stay ("on 2-3 L", "on 1-2 mg").
def test_month_day_with_a_dash_at_the_default_point(deid: Any) -> None:
    text = "He returned to OR on 7-8 for coiling of aneurysm."
    assert [e.type for e in covering(deid, text, "7-8")] == ["DATE"]


@pytest.mark.parametrize("text,needle", [
    ("Pt on 2-3 L NC, sats 95%.", "2-3"),
    ("Remains on 1-2 mg/hr of ativan.", "1-2"),
    ("Placed on 4-6 puffs albuterol q4h.", "4-6"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_ranges_with_units_after_on_stay(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# Sixth round. Date-shifted records (MIMIC-style corpora move every date into the 2100s)
# write full dates with years no rule took: a full date is a date whatever its century.
@pytest.mark.parametrize("text,needle", [
    ("Admitted 2114-12-01 with sepsis.", "2114-12-01"),
    ("Intubated 12/2/2114 for hypoxia.", "12/2/2114"),
    ("Admit date: 12/01/2114.", "12/01/2114"),
    ("Last colonoscopy Jan 3, 2109 normal.", "Jan 3, 2109"),
    ("Stroke in March 2110, residual L weakness.", "March 2110"),
    ("Echo 2109/04/11 showed EF 35%.", "2109/04/11"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_full_date_in_the_2100s_is_covered(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["DATE"]


# A bare year after an event is removed at the recall point in that century too; a clock
# time after "at" stays.
def test_a_year_after_an_event_in_the_2100s_at_the_recall_point(deid: Any) -> None:
    text = "Pt had Whipple in 2105 for pancreatic CA, CABG 2109."
    for needle in ("2105", "2109"):
        start = text.index(needle)
        assert [e.type for e in deid.analyze(text, point="recall") if e.start <= start and start + 4 <= e.end] == ["DATE"]


def test_a_clock_time_in_the_2100s_stays(deid: Any) -> None:
    text = "Lasix 40 mg IV given at 2130, family visited until 2100."
    assert [e for e in deid.analyze(text, point="recall") if e.type == "DATE"] == []


# Hospital pagers are written with a one- or two-digit exchange: "Pager 4-1823".
@pytest.mark.parametrize("text,needle", [
    ("Pager 4-1823 for questions overnight.", "4-1823"),
    ("Resident aware, beeper 3-0912 if needed.", "3-0912"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_pager_with_a_short_exchange(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["PHONE"]


# "for" names a place after work verbs ("works for vista health"), not after a transfer
# ("transferred for ECMO eval" is a purpose).
@pytest.mark.parametrize("text,word", [
    ("Pt from Bayview MICU, transferred for ECMO eval.", "ECMO"),
    ("Pt sent for CTA this am, returned 1400.", "CTA"),
    ("Came for TAVR workup, now in CCU.", "TAVR"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_purpose_after_for_is_no_place(deid: Any, text: str, word: str, point: str) -> None:
    start = text.index(word)
    assert [e for e in deid.analyze(text, point=point) if e.start < start + len(word) and start < e.end] == []


@pytest.mark.parametrize("text,needle", [
    ("he works for vista health as a driver.", "vista"),
    ("Husband works for Bethlehem Steel.", "Bethlehem"),
])
def test_an_employer_after_works_for_is_still_a_place(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle)


# A person named after a legal title: "Atty. Fleischman", "Attorney Fleischman".
@pytest.mark.parametrize("text,needle", [
    ("Pt's guardian is Atty. Fleischman at 410-555-2100.", "Fleischman"),
    ("Guardian is Atty. Fleischman, call before any procedure.", "Fleischman"),
    ("Spoke w/ atty. fleischman re: guardianship.", "fleischman"),
    ("Pt has court appointed guardian, Atty. Rosenblatt.", "Rosenblatt"),
])
def test_a_name_after_a_legal_or_police_title(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle)


# A street is a geographic unit smaller than a state, with or without a house number and
# with its suffix abbreviated; "St" (Saint) and "Dr" (Doctor) are left to their own rules.
@pytest.mark.parametrize("text,needle", [
    ("Pt lives on Eastern Ave. near the park.", "Eastern Ave"),
    ("Found down outside his home on Harford Rd, brought in by EMS.", "Harford Rd"),
    ("Lives off Liberty Hwy with wife.", "Liberty Hwy"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_street_with_an_abbreviated_suffix(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["LOCATION"]


# A role word and a code glued to a number: "MD PGY2" is a resident's year, no name.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_code_after_a_role_word_is_no_name(deid: Any, point: str) -> None:
    text = "Resident: Tom Becker MD PGY2, aware of labs."
    start = text.index("PGY2")
    assert [e for e in deid.analyze(text, point=point) if e.start < start + 4 and start < e.end] == []
    assert covering(deid, text, "Becker")


# A named place ending in a place noun after a preposition: "from Sparrows Point", "to Oak
# Crest Village"; and a street written in lower case after "lives on".
@pytest.mark.parametrize("text,needle", [
    ("Pt was brought in from Sparrows Point by county EMS.", "Sparrows Point"),
    ("Pt will go to Oak Crest Village after d/c.", "Oak Crest Village"),
    ("Lives in Cedar Ridge Estates with husband.", "Cedar Ridge Estates"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_named_place_ending_in_a_place_noun(deid: Any, text: str, needle: str, point: str) -> None:
    start = text.index(needle)
    ents = deid.analyze(text, point=point)
    assert sum(max(0, min(e.end, start + len(needle)) - max(e.start, start)) for e in ents) == len(needle)


@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_lower_case_street_after_lives_on(deid: Any, point: str) -> None:
    text = 'pt states "i live on belair road by the store."'
    start = text.index("belair road")
    ents = deid.analyze(text, point=point)
    assert sum(max(0, min(e.end, start + 11) - max(e.start, start)) for e in ents) == 11


@pytest.mark.parametrize("text,word", [
    ("Trigger Point injection given to L shoulder.", "Point"),
    ("Pt to Physical Therapy at 1400.", "Therapy"),
])
def test_clinical_phrases_with_place_nouns_stay(deid: Any, text: str, word: str) -> None:
    assert covering(deid, text, word) == []


# Ages over 89 said with a verb, a phone extension with an exchange, a plate number a
# few words after its label.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_age_over_89_after_turns(deid: Any, point: str) -> None:
    text = "Birthday next week; pt turns 91 and family plans a party."
    assert [e.type for e in covering(deid, text, "91")] == ["AGE_OVER_89"]


@pytest.mark.parametrize("text,needle", [
    ("Call ext. 5-4122 for the unit clerk.", "5-4122"),
    ("Family can reach SW at extension 44817.", "44817"),
])
def test_a_phone_extension(deid: Any, text: str, needle: str) -> None:
    assert [e.type for e in covering(deid, text, needle)] == ["PHONE"]


def test_a_plate_number_a_few_words_after_its_label(deid: Any) -> None:
    text = "Pt's license plate noted in valuables form: 7BXT229."
    assert [e.type for e in covering(deid, text, "7BXT229")] == ["VEHICLE_ID"]


# Written all in lower case or all in capitals: a dictionary word before ", son" is the end
# of the clause, not a name ("at bedside all day, son mike ..."); hospitals by initials
# ending in MC ("at gbmc"); a town of two or three words in lower case after a preposition.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_word_ending_a_clause_before_a_relation_stays(deid: Any, point: str) -> None:
    text = "social: wife jean at bedside all day, son mike lives nearby."
    start = text.index("day")
    assert [e for e in deid.analyze(text, point=point) if e.start < start + 3 and start < e.end] == []
    assert covering(deid, text, "mike")


@pytest.mark.parametrize("text,needle", [
    ("pt followed by dr greenberg at gbmc for chf.", "gbmc"),
    ("PT FOLLOWED BY DR. GREENBERG AT GBMC FOR CHF.", "GBMC"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_hospital_by_initials_ending_in_mc(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["LOCATION"]


@pytest.mark.parametrize("text,needle", [
    ("pt's brother ray from ocean city called.", "ocean city"),
    ("wife is at home in bel air.", "bel air"),
    ("family drove from white marsh today.", "white marsh"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_lower_case_town_of_several_words(deid: Any, text: str, needle: str, point: str) -> None:
    start = text.index(needle)
    ents = deid.analyze(text, point=point)
    assert sum(max(0, min(e.end, start + len(needle)) - max(e.start, start)) for e in ents) == len(needle)


# The trained NER runs a name on into the verb after it in capitals ("SON MICHAEL LIVES IN
# TOWSON"): a last word that is a dictionary word and no Census name is trimmed.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_verb_after_a_name_in_capitals_stays(deid: Any, point: str) -> None:
    text = "SOCIAL: WIFE JOAN AT BEDSIDE, SON MICHAEL LIVES IN TOWSON. DTR KAREN IN FLORIDA."
    start = text.index("LIVES")
    assert [e for e in deid.analyze(text, point=point) if e.start < start + 5 and start < e.end] == []
    assert covering(deid, text, "MICHAEL")


# Discharge-summary headers label the record number "Unit No:".
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_record_number_after_unit_no(deid: Any, point: str) -> None:
    text = "DISCHARGE SUMMARY\nUnit No: 452-88-13\nAdmission Date: 11/28/2014"
    start = text.index("452-88-13")
    assert [e.type for e in deid.analyze(text, point=point) if e.start <= start and start + 9 <= e.end] == ["MRN"]


# A name in the possessive: after a relation word ("brother frank's place") and before a
# home ("at louise's house"); relation words and pronouns before a home stay.
@pytest.mark.parametrize("text,needle", [
    ("pt thinks he is at his brother frank's place in dundalk.", "frank"),
    ('pt confused, states she is "at louise\'s house" and wants to go home.', "louise"),
    ("found down at june's apartment by EMS.", "june"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_name_in_the_possessive(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["NAME"]


@pytest.mark.parametrize("text,word", [
    ("Pt staying at her daughter's house after d/c.", "daughter"),
    ("Pt will go to the neighbor's home for now.", "neighbor"),
])
def test_a_relation_word_before_a_home_stays(deid: Any, text: str, word: str) -> None:
    assert covering(deid, text, word) == []


# A capitalised adjective no dictionary lists is no place after "went to": "Interventional".
@pytest.mark.parametrize("text,word", [
    ("Pt went to Interventional Radiology for a PICC.", "Interventional"),
    ("Pt transferred to Neurointerventional suite at 1300.", "Neurointerventional"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_unlisted_adjective_after_a_place_verb_stays(deid: Any, text: str, word: str, point: str) -> None:
    start = text.index(word)
    assert [e for e in deid.analyze(text, point=point) if e.start < start + len(word) and start < e.end] == []


# An age over 89 said as a birthday: "Pt's 90th birthday is next month".
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_age_over_89_as_a_birthday(deid: Any, point: str) -> None:
    text = "Pt's 90th birthday is next month; family planning a party."
    start = text.index("90th")
    assert [e.type for e in deid.analyze(text, point=point) if e.start <= start and start + 2 <= e.end] == ["AGE_OVER_89"]


def test_a_birthday_under_90_stays(deid: Any) -> None:
    assert covering(deid, "Pt celebrated her 75th birthday here.", "75th") == []


# A hospital name ran on over the line break into the next line ("transferred from Sibley
# Memorial in DC.\nPt lives ..." printed "from [LOCATION] lives ...": "Pt" and the line
# break were gone).
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_facility_name_stops_at_the_line_end(deid: Any, point: str) -> None:
    text = "Pt was transferred from Sibley Memorial in DC.\nPt lives in senior housing."
    ents = deid.analyze(text, point=point)
    assert covering(deid, text, "Sibley")
    assert all("\n" not in e.text for e in ents), ents
    assert "\nPt lives" in deid.anonymize(text, point=point).text


# "my name is Bob": a capitalised word after "my name is" is a name even when it is a word.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_capitalised_stated_name_that_is_a_word(deid: Any, point: str) -> None:
    text = 'Pt states "my name is Bob, not Robert."'
    start = text.index("Bob")
    assert [e.type for e in deid.analyze(text, point=point) if e.start <= start and start + 3 <= e.end] == ["NAME"]


# A town WordNet lists as a noun ("Hagerstown") capitalised in mid-sentence is a place.
@pytest.mark.parametrize("text,needle", [
    ("Cousin and her husband stopped by, both from out of town (Hagerstown).", "Hagerstown"),
    ("Her son drove down from Hagerstown this morning.", "Hagerstown"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_town_that_is_a_dictionary_noun(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point)


# No span crosses a blank line: "replete k." then a misspelt heading on the next paragraph
# ("Nuero:", "Soical:") read as an initial and a surname (one such span on the dev notes).
@pytest.mark.parametrize("heading", ["Nuero", "Soical", "Carddiac"])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_no_span_crosses_a_blank_line(deid: Any, heading: str, point: str) -> None:
    text = f"Plan: recheck lytes in am, replete k. \n \n{heading}: see flowsheet."
    assert [e for e in deid.analyze(text, point=point) if "\n" in e.text] == []


# A credential written before the name: "RRT Gomez", "LPN Okafor".
@pytest.mark.parametrize("text,needle", [
    ("Weaned to 4L NC by 0600. RRT Gomez.", "Gomez"),
    ("Meds given by LPN Okafor at 0900.", "Okafor"),
])
def test_a_name_after_a_credential_written_first(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle)


# Dates and ages in other written forms: a compact day-month-year ("08Dec2014"), a
# month/day after "the week of", an age over 89 in words ("ninety-three years old").
@pytest.mark.parametrize("text,needle,kind", [
    ("Note signed 08Dec2014 1422 by the covering MD.", "08Dec2014", "DATE"),
    ("Specimen collected 3JAN15 at 0600.", "3JAN15", "DATE"),
    ("Follow up in clinic the week of 12/15.", "12/15", "DATE"),
    ("Patient is ninety-three years old and lives alone.", "ninety-three", "AGE_OVER_89"),
    ("A ninety one year old woman with CHF.", "ninety one", "AGE_OVER_89"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_dates_and_ages_in_other_forms(deid: Any, text: str, needle: str, kind: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == [kind]


@pytest.mark.parametrize("text,needle", [
    ("Pt took 3 of 4/5 doses.", "4/5"),
    ("Strength 4 of 5/5 in RUE.", "5/5"),
])
def test_a_fraction_after_of_stays(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# Title-case headings of an exam template are no towns ("Effort" is a town in PA).
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_title_case_heading_word_that_is_a_town_stays(deid: Any, point: str) -> None:
    text = "Respiratory\n- Assessment of Respiratory Effort: Normal respiratory effort."
    start = text.index("Effort")
    assert [e for e in deid.analyze(text, point=point) if e.start < start + 6 and start < e.end] == []


# Seventh round. The last four digits of a social security number, a year of birth (a date
# element that tells an age over 89, so the default point removes it too; the recall point
# removes every year already) and a month-day range start written with a dash after "from".
@pytest.mark.parametrize("text,needle,kind", [
    ("SSN ending 4421 on file.", "4421", "SSN"),
    ("Verified identity with last 4 of SSN 4421.", "4421", "SSN"),
    ("Social security number ending in 0937 confirmed.", "0937", "SSN"),
    ("Pt has been in ICU from 11-28 to present.", "11-28", "DATE"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_partial_identifiers(deid: Any, text: str, needle: str, kind: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == [kind]


@pytest.mark.parametrize("text,needle", [
    ("Pt b. 1921, lives with niece.", "1921"),
    ("Patient was born in 1931 in Ohio.", "1931"),
    ("YOB: 1928.", "1928"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_year_of_birth(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["DATE"]


# A range of small numbers after "from" is a quantity, not a date.
@pytest.mark.parametrize("text,needle", [
    ("Pain decreased from 8-9 to 4 after dilaudid.", "8-9"),
    ("Titrated from 2-4 mcg/min.", "2-4"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_small_range_after_from_stays(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# A clinical word built with "tele" is no place: "logged in telehealth visit".
@pytest.mark.parametrize("text,needle", [
    ("Pt logged in telehealth visit from home.", "telehealth"),
    ("Seen in telemedicine clinic today.", "telemedicine"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_tele_word_after_a_preposition_stays(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# Signature and staff lines of other note kinds (seventh round): a transcriptionist's
# initials, a credential written with a hyphen ("PA-C") that is neither a state nor the
# initial of a name, and a relation word before a name that is not the name.
@pytest.mark.parametrize("text,needle", [
    ("Dictated by: Thomas O'Brien, PA-C. Transcribed by: klm", "klm"),
    ("Typed by: JRW\n", "JRW"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_transcriptionists_initials(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["NAME"]


@pytest.mark.parametrize("text,needle,point", [
    ("Dictated by: Thomas O'Brien, PA-C. Transcribed by: klm", "C. Transcribed", "default"),
    ("Dictated by: Thomas O'Brien, PA-C. Transcribed by: klm", "C. Transcribed", "recall"),
    ("Seen by Ann Lee, FNP-C. Patient tolerated diet.", "C. Patient", "default"),
    ("Seen by Ann Lee, FNP-C. Patient tolerated diet.", "C. Patient", "recall"),
])
def test_a_hyphenated_credential_is_no_initial_and_no_state(deid: Any, text: str, needle: str, point: str) -> None:
    start = text.index(needle)
    ents = deid.analyze(text, point=point)
    assert [e for e in ents if e.start < start + len(needle) and start < e.end] == []
    assert [e for e in ents if e.type == "LOCATION"] == []


@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_relation_word_after_with_is_kept(deid: Any, point: str) -> None:
    text = "Spoke with son James Whitfield Jr. by phone."
    ents = deid.analyze(text, point=point)
    assert [e for e in ents if e.start <= text.index("son ") < e.end] == []
    assert [e for e in ents if "James Whitfield" in e.text]


# An abbreviation in capitals with a plural s ("ADLs", "ABGs") is shorthand, not a name.
@pytest.mark.parametrize("text,needle", [
    ("OT: ADLs min A, will follow.", "ADLs"),
    ("Repeat ABGs in am.", "ABGs"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_plural_abbreviation_stays(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# An employer after a work verb, named by ordinary capitalised words; an accession number.
@pytest.mark.parametrize("text,needle,kind", [
    ("Pt works at Home Depot in receiving.", "Home Depot", "LOCATION"),
    ("Wife works for General Motors in Baltimore.", "General Motors", "LOCATION"),
    ("Path: specimen S15-4432 reviewed, consistent with adenocarcinoma.", "S15-4432", "OTHER_ID"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_employer_and_an_accession_number(deid: Any, text: str, needle: str, kind: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == [kind]


# A work verb before ordinary words in lower case or a heading keeps them.
@pytest.mark.parametrize("text", [
    "Pt works at home as a bookkeeper.",
    "Pt Works At Home per wife.",
])
def test_work_verb_before_ordinary_words(deid: Any, text: str) -> None:
    assert [e for e in deid.analyze(text) if "ome" in e.text] == []


# Seventh round, lower-case nursing lines: a phone number with its area code in brackets
# and no space, a facility after "transferred here from", "wk of 1/5", a name stated after
# a relation's possessive ("grandson's name is aiden").
def _lower_cases() -> list[Any]:
    cases = [
        ("wife's cell (410)5550199, home # 443-555-2281.", "(410)5550199", "PHONE"),
        ("transferred here from hopkins bayview 1/4 for cath.", "hopkins bayview", "LOCATION"),
        ("Pt was sent there from Kernan yesterday.", "Kernan", "LOCATION"),
        ("wk of 1/5 pt to start rehab.", "1/5", "DATE"),
        ("grandson's name is aiden, 6 yo.", "aiden", "NAME"),
        ("Her husband's name is Harold.", "Harold", "NAME"),
    ]
    return [(t, n, k, p) for t, n, k in cases for p in ("default", "recall")]


@pytest.mark.parametrize("text,needle,kind,point", _lower_cases())
def test_lower_case_nursing_lines(deid: Any, text: str, needle: str, kind: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == [kind]


# "to start rehab": a verb after "to" before a facility word is no facility name.
@pytest.mark.parametrize("text,needle", [
    ("wk of 1/5 pt to start rehab.", "start"),
    ("Plan: pt to begin cardiac rehab next week.", "begin"),
    ("Pt to go to acute rehab.", "acute"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_verb_before_a_facility_word_stays(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# A letter's signature block: the facility name is found on its own line, and the lines
# above it (a credential, a division) are kept, not swallowed into one place across lines.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_signature_block_keeps_its_lines(deid: Any, point: str) -> None:
    text = ("Rebecca Tan-Whitlock, MD, FACC\nDivision of Cardiology\nMedStar Union Memorial Hospital\n"
            "201 E. University Pkwy, Baltimore, MD 21218\n")
    ents = deid.analyze(text, point=point)
    assert [e.text for e in ents if "\n" in e.text] == []
    out = deid.anonymize(text, point=point).text
    assert "Division of Cardiology" in out and "FACC" in out and "Union Memorial" not in out


# A staff label at the start of a line, then a colon and a surname that is also a word
# ("Attending: Smith", "Surgeon: Baker").
@pytest.mark.parametrize("text,needle", [
    ("Plan: home.\n\nAttending: Smith\nResident: Jones\n", "Smith"),
    ("Surgeon: Baker\nAnesthesia: general ETT\n", "Baker"),
    ("Primary RN: Carpenter\n", "Carpenter"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_staff_label_then_a_surname(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["NAME"]


@pytest.mark.parametrize("text,needle", [
    ("Attending: Covering\n", "Covering"),
    ("Nurse: Pending assignment\n", "Pending"),
    ("Anesthesia: General\n", "General"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_staff_label_then_an_ordinary_word(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# A hospital's emergency department named by the hospital word ("from Mercy ED") and a
# retirement community in lower case.
@pytest.mark.parametrize("text,needle", [
    ("PT IS A 58 YO MALE ADMITTED FROM MERCY ED W/ CHEST PAIN.", "MERCY"),
    ("Transferred from Providence ER for cath.", "Providence"),
    ("pt wants to go back to her apartment at charlestown retirement community.", "charlestown"),
    ("Lives at Brightview Senior Living in a 1 br apt.", "Brightview"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_hospital_ed_and_a_retirement_community(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["LOCATION"]


@pytest.mark.parametrize("text,needle", [
    ("Pt lives in assisted living, ambulates with walker.", "assisted"),
    ("Pt brought to the ED by EMS.", "ED"),
    ("Seen in general ED beds overnight.", "general"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_generic_care_settings_stay(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# A relation word quoted as a speaker ('Wife: "Bob's been confused"') is no name; an
# employer after "employer:".
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_relation_word_as_speaker_stays(deid: Any, point: str) -> None:
    text = 'Wife: "Bob\'s been confused since Sunday."'
    ents = deid.analyze(text, point=point)
    assert [e for e in ents if "Wife" in e.text] == []
    assert [e for e in ents if e.text == "Bob"]


@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_named_speaker_is_still_masked(deid: Any, point: str) -> None:
    text = 'Elizabeth: "I\'m worried about his breathing."'
    assert [e.type for e in deid.analyze(text, point=point) if e.text == "Elizabeth"] == ["NAME"]


@pytest.mark.parametrize("text,needle", [
    ("Patient's employer: Amazon fulfillment center, Sparrows Point.", "Amazon"),
    ("Employer - Bethlehem Steel (retired).", "Bethlehem Steel"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_employer_after_its_label(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["LOCATION"]


# Clinical fractions written like a month/day (seventh round): "2/2" for "secondary to",
# strength and pain scores, ventilator settings, a fraction glued to a unit.
@pytest.mark.parametrize("text,needle", [
    ("Hypotension 2/2 sepsis vs hypovolemia.", "2/2"),
    ("Motor 4/5 in BLE, 5/5 BUE.", "5/5"),
    ("Pain 6/10, improved to 3/10 after dilaudid 0.5 mg.", "3/10"),
    ("describes pain as 5/10 with movement.", "5/10"),
    ("PT. EXTUBATED FROM 5/5 IPS/CPAP ONTO 4LNC.", "5/5"),
    ("RESP-IMV 800x60x10 5/5. SATS=98-100%.", "5/5"),
    ("RESP. O2/2l sats>96% lungs clear.", "2/2"),
    ("d5 1/2ns at 125cc/hr for 1/5 liters.", "1/5"),
    ("Pt on 2/3 maintenance IVF.", "2/3"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_clinical_fraction_stays(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


@pytest.mark.parametrize("text,needle", [
    ("Blood cultures drawn on 2/2 were negative.", "2/2"),
    ("Chest pain since 3/10, worse with exertion.", "3/10"),
    ("Seen 2/2 by cardiology.", "2/2"),
    ("Labs from 3/8 to 3/10 stable.", "3/10"),
    ("OOB 1800 3/9.", "3/9"),
    ("Cr 2.9 today (3.3 3/25).", "3/25"),
    ("hct 28.4 at 0000(10/15) will transfuse.", "10/15"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_month_day_near_those_words_is_still_a_date(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["DATE"]


# A nickname in quotes after "goes by" (an ordinary word there is still a name), and a
# relative's initials in brackets ("son (J.R.)").
@pytest.mark.parametrize("text,needle,point", [
    ('Pt goes by "Cookie" per family.', "Cookie", "default"),
    ('Pt goes by "Cookie" per family.', "Cookie", "recall"),
    ("Prefers to be called 'Buddy'.", "Buddy", "default"),
    ("Prefers to be called 'Buddy'.", "Buddy", "recall"),
    ("Wife (Mary Ellen) and son (J.R.) at bedside.", "J.R.", "default"),
    ("Wife (Mary Ellen) and son (J.R.) at bedside.", "J.R.", "recall"),
])
def test_a_nickname_and_a_relatives_initials(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["NAME"]


@pytest.mark.parametrize("text,needle", [
    ('Pain "goes by" quickly per pt.', "quickly"),
    ("Son (see above) at bedside.", "see"),
])
def test_quotes_and_brackets_without_a_name(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# A street without a house number after "on" ("her house on Elm St."), the last four digits
# of a payment card, a social-media handle.
@pytest.mark.parametrize("text,needle,kind", [
    ("Pt thinks she is at her house on Elm St.", "Elm St", "LOCATION"),
    ("Grew up on N. Milton Ct and moved in 1990.", "Milton Ct", "LOCATION"),
    ("Valuables: $43 cash, Visa card ending 7781, locked in safe.", "7781", "ACCOUNT"),
    ("Debit card last 4 digits 0923 on file.", "0923", "ACCOUNT"),
    ("Pt's twitter handle @jdoe_bmore was in the news story.", "@jdoe_bmore", "OTHER_ID"),
    ("Instagram: @bmore.nana52", "@bmore.nana52", "OTHER_ID"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_street_a_card_and_a_handle(deid: Any, text: str, needle: str, kind: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == [kind]


@pytest.mark.parametrize("text,needle", [
    ("Pt resting @home with family.", "@home"),
    ("Meds given @bedside, pt tolerated.", "@bedside"),
    ("Ambulated on Hall St with PT.", "with"),
])
def test_at_signs_and_words_after_a_street_stay(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# An employer whose name ends in an ordinary word ("works for vista health"), and a whole
# name before "'s house" ("at seymour black's house").
@pytest.mark.parametrize("text,needle,kind", [
    ("he works for kelmar health. a: lg ami", "kelmar health", "LOCATION"),
    ("husband works for pellworth insurance.", "pellworth insurance", "LOCATION"),
    ("she works at corvallen systems, days.", "corvallen systems", "LOCATION"),
    ('stating, "at seymour black\'s house."', "seymour black", "NAME"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_employer_suffix_and_a_whole_name_before_house(deid: Any, text: str, needle: str, kind: str,
                                                          point: str) -> None:
    assert types_around(deid, text, needle, point) == [kind]


@pytest.mark.parametrize("text,needle", [
    ("Pt went to the neighbor's house for dinner.", "neighbor"),
    ("Pt was found at her sister's house.", "sister"),
    ("She works at home health part time.", "home"),
])
def test_ordinary_words_before_house_and_after_work_stay(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# An age over 89 written with the sex and a slash ("F/93", "93/M"), and a holiday that is
# also a name ("Christmas Eve") kept as a date, not two names.
@pytest.mark.parametrize("text,needle,kind", [
    ("F/93 with hip fx.", "93", "AGE_OVER_89"),
    ("Pt is a 93/M with CHF.", "93", "AGE_OVER_89"),
    ("Fell on Christmas Eve at home.", "Christmas Eve", "DATE"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_age_with_a_slash_and_a_holiday(deid: Any, text: str, needle: str, kind: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == [kind]


@pytest.mark.parametrize("text,needle", [
    ("F/U 93 in clinic room.", "93"),
    ("BP 93/54 this am.", "93"),
    ("M/F 1:1 ratio in the trial.", "M/F"),
])
def test_numbers_near_a_slash_stay(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# Clinical names that look like places (seventh round): a scale or classification named
# after a university ("Stanford type A", "Duke criteria", "Columbia suicide severity rating
# scale"), a device after "via" ("via Cordis 8"), a feed after "tx with" ("Tx with Jevity 1.2").
@pytest.mark.parametrize("text,needle", [
    ("Stanford sleepiness scale done.", "Stanford"),
    ("CTA shows Stanford type A dissection.", "Stanford"),
    ("Meets modified Duke criteria for endocarditis.", "Duke"),
    ("Columbia suicide severity rating scale: low risk.", "Columbia"),
    ("CVP via Cordis 8.", "Cordis"),
    ("Tx with Jevity 1.2 @ 60 cc/hr via Dobhoff.", "Jevity"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_clinical_name_that_looks_like_a_place(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


@pytest.mark.parametrize("text,needle", [
    ("Pt transferred from Duke for LVAD eval.", "Duke"),
    ("Followed at Stanford for her transplant.", "Stanford"),
    ("Pt tx to Kernan 3 this am.", "Kernan"),
])
def test_the_same_names_as_places_are_still_found(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle)


# A local protocol named after a hospital still names the hospital (the dev gold marks it).
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_hospital_named_protocol_is_still_a_place(deid: Any, point: str) -> None:
    text = "now to start IV insulin per U Maryland scale."
    start = text.index("Maryland")
    assert [e.type for e in deid.analyze(text, point=point) if e.start <= start < e.end] == ["LOCATION"]


# A relation word in brackets after another cue is no name, and the name after the bracket
# is found ("proxy (son) dmitri"); a world city in lower case after "from" or "in".
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_relation_word_in_brackets_then_the_name(deid: Any, point: str) -> None:
    text = "proxy (son) dmitri aware of plan."
    ents = deid.analyze(text, point=point)
    assert [e for e in ents if e.start <= text.index("son") < e.end] == []
    assert [e.type for e in ents if e.text == "dmitri"] == ["NAME"]


@pytest.mark.parametrize("text,needle", [
    ("husband jean-baptiste in from montreal.", "montreal"),
    ("wife's family is in lagos, she flies back tomorrow.", "lagos"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_world_city_in_lower_case(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["LOCATION"]


@pytest.mark.parametrize("text,needle", [
    ("pt ate turkey sandwich for lunch.", "turkey"),
    ("pt requests cold turkey from cafeteria.", "turkey"),
])
def test_lower_case_words_that_are_countries_stay(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# A house number, a direction and a street name without a suffix ("1100 N. Calvert"), a
# county named by initials ("PG County"), a region ("the Eastern Shore").
@pytest.mark.parametrize("text,needle", [
    ("Lives in Apt 3C, 1100 N. Calvert.", "1100 N. Calvert"),
    ("Staying with sister in PG County.", "PG County"),
    ("Pt's family is from the Eastern Shore.", "Eastern Shore"),
    ("Moved from Anne Arundel County last year.", "Anne Arundel County"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_street_without_suffix_a_county_and_a_region(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["LOCATION"]


@pytest.mark.parametrize("text,needle", [
    ("Given 500 N. saline bolus? no - NS 500 mL.", "500"),
    ("Pt in ICU, county records requested.", "county"),
])
def test_numbers_and_county_as_words_stay(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# Places before a public service ("towson police", "baltimore county ems"), a US town that
# dictionaries list only as a noun, in lower case after "from" ("in from aberdeen"). After
# "in" such words are rooms and things ("ambulated in hall"), and "sq" is subcutaneous
# ("6u reg sq"), so "at franklin sq" is left alone.
def _service_cases() -> list[Any]:
    cases = [
        ("bib baltimore county ems after fall.", "baltimore county"),
        ("pt found by towson police, brought to ed.", "towson"),
        ("wife drove him in from aberdeen.", "aberdeen"),
        ("pt's son is a cop from essex.", "essex"),
    ]
    return [(t, n, p) for t, n in cases for p in ("default", "recall")]


@pytest.mark.parametrize("text,needle,point", _service_cases())
def test_places_before_services_and_lower_case_towns(deid: Any, text: str, needle: str, point: str) -> None:
    assert types_around(deid, text, needle, point) == ["LOCATION"]


@pytest.mark.parametrize("text,needle", [
    ("pt returned from reading room? no - from radiology.", "reading"),
    ("called police per protocol.", "called"),
    ("skin tear 2 sq cm on L arm.", "sq"),
    ("given 6u reg sq at 12pm.", "reg sq"),
    ("Amb in hall this am with PT.", "hall"),
    ("pt in shock, on levophed.", "shock"),
])
def test_ordinary_words_before_services_and_after_from_stay(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle) == []


# "so" is a conjunction in conversation; only "SO" in capitals is a significant other
# (ACI-Bench dialogues lost "so , i'm", "so good", "so , um" to the relation rule).
@pytest.mark.parametrize("text,needle", [
    ("[doctor] okay , so , i'm just going to take a look .", "i'm"),
    ("[patient] yeah , it's been so good lately .", "good"),
    ("[doctor] so , um , how is your diet ?", "um"),
    ("[doctor] so we'll go ahead and order that .", "we'll"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_so_in_conversation_is_no_relation(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_significant_other_in_capitals_still_names(deid: Any, point: str) -> None:
    text = "SO Reginald at bedside, updated on plan."
    assert [e.type for e in deid.analyze(text, point=point) if e.text == "Reginald"] == ["NAME"]


@pytest.mark.parametrize("text,needle", [
    ("[doctor] yeah . um , so tell me , how are you doing ?", "um"),
    ("[doctor] your labs here all look good , so i'm happy .", "good"),
    ("[patient] hi , dr. james , good to see you .", "good"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_conversational_words_near_so_and_a_title(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


@pytest.mark.parametrize("text,needle", [
    ("Seen by Drs. Weiss, Abernathy and Okafor.", "Okafor"),
    ("dr. james, dr. smith aware.", "smith"),
])
def test_names_listed_after_a_title_are_still_found(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle)


# Interjections of a transcribed conversation are no rare surnames at the recall point
# ("hey" x112 in twenty ACI-Bench dialogues).
@pytest.mark.parametrize("needle", [
    "hey",
    "mhm",
    "uh-huh",
])
def test_interjections_stay_at_the_recall_point(deid: Any, needle: str) -> None:
    text = f"[doctor] {needle} , martha . how are you ?"
    assert covering(deid, text, needle, point="recall") == []


# A word that is a common surname and only a rare given name or a nickname ("little",
# "long") is no common given name: the name list kept one band for both.
def test_a_common_surname_is_not_a_common_given_name() -> None:
    from noteward.deid.lists import name_lists

    census = name_lists()
    assert census.is_last("little", 1) and not census.is_first("little", 1)
    assert census.is_first("mary", 1) and census.is_first("lucy", 1)


def test_little_in_a_dialogue_stays_at_the_recall_point(deid: Any) -> None:
    text = "[patient] i'm a little tired , that's all ."
    assert [e for e in deid.analyze(text, point="recall") if e.text == "little"] == []


@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_place_name_that_is_an_adjective_after_in_stays(deid: Any, point: str) -> None:
    text = "pain controlled, able to sleep in long naps."
    assert [e for e in deid.analyze(text, point=point) if e.text == "long"] == []


# Nursing shorthand in Title case at the recall point ("Vanco", "Lytes", "Creat"), an
# adverb no dictionary lists ("Hemodynamically"), shorthand that is a rare nickname ("reg"
# insulin, "perl" for PERRL).
@pytest.mark.parametrize("text,needle", [
    ("ID: continued on Vanco and Unasyn.", "Vanco"),
    ("Lytes replaced prn.", "Lytes"),
    ("Creat bumped to 1.5 today.", "Creat"),
    ("Hemodynamically stable overnight.", "Hemodynamically"),
    ("gave 12units reg. insulin sc.", "reg"),
    ("daughter into interpret, perl, mae, follows commands.", "perl"),
])
def test_shorthand_stays_at_the_recall_point(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle, point="recall") == []


# Eighth round: staff named by a less common given name after nursing cues the name rules
# did not know: "d/w" (discussed with), a shift before "RN:" (the recall point's name list
# finds these; the default point needs the cue), a role word with the name in brackets, a
# credential in brackets after the name (missed at both points).
@pytest.mark.parametrize("text,needle", [
    ("d/w cordelia re: plan, she agrees.", "cordelia"),
    ("D/W OCTAVIA, WILL HOLD AM LASIX.", "OCTAVIA"),
    ("NIGHT RN: QUINCY. DAY RN TO FOLLOW UP.", "QUINCY"),
])
def test_staff_after_nursing_cues_at_the_default_point(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


@pytest.mark.parametrize("text,needle", [
    ("seen by nephrology fellow (ignatius), no HD today.", "ignatius"),
    ("rt (leopold) changed vent settings.", "leopold"),
    ("aware of results: ellery (np).", "ellery"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_staff_named_in_brackets(deid: Any, text: str, needle: str, point: str) -> None:
    assert "NAME" in types_around(deid, text, needle, point=point)


# A longer place that holds a shorter name of another type ("son in glen burnie": "glen" a
# given name after "son") lost its tail at the recall point: the surer, shorter span won
# and the rest of the place stayed visible.
@pytest.mark.parametrize("text,needle", [
    ("daughter lives in dundalk, son in glen burnie.", "burnie"),
    ("daughter lives in dundalk, son in mount vernon.", "mount"),
])
def test_a_place_holding_a_name_stays_whole_at_the_recall_point(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, needle, point="recall")


# A city of the world in two words, in lower case; facilities named "... Manor" and
# "... church".
@pytest.mark.parametrize("text,needle", [
    ("pt recently moved here from sao paulo.", "sao paulo"),
    ("daughter lives in buenos aires.", "buenos aires"),
    ("PT IS A RESIDENT OF KEYSER MANOR.", "KEYSER MANOR"),
    ("pt is a deacon at bethel ame church.", "bethel ame"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_world_places_and_named_facilities(deid: Any, text: str, needle: str, point: str) -> None:
    assert "LOCATION" in types_around(deid, text, needle, point=point)


# Countries and states are no identifiers under Safe Harbor (the dev gold leaves "dominican
# republic" unmarked): "from puerto rico" was half masked ("puerto" an unknown word after
# "from"), "died in vietnam" masked whole.
@pytest.mark.parametrize("text,needle", [
    ("pt recently moved here from puerto rico.", "puerto rico"),
    ("visiting from the philippines, speaks tagalog.", "philippines"),
    ("brother died in vietnam in 1968.", "vietnam"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_countries_stay(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# A signature with the initial glued to a surname that dictionaries list as a famous
# person ("K.Delacroix,RN"), and a sign-off word before a name ("Thx, Maureen").
def test_glued_initial_before_a_credential(deid: Any) -> None:
    assert "NAME" in types_around(deid, "K.Delacroix,RN", "Delacroix")


@pytest.mark.parametrize("point", ["default", "recall"])
def test_sign_off_word_before_a_name_stays(deid: Any, point: str) -> None:
    assert covering(deid, "Thx, Maureen (CCU RN)", "Thx", point=point) == []


# Found by swapping the dev notes' gold names for random Census names of the same shape
# (/work/exp/s23/swap_oof.py): cues the rules knew, but names they did not.
# A surname that looks like an inflected word ("costales" = costal + es, "tiner") after a
# relation word; a name before "aware" (nursing notes' commonest staff cue); a surname after
# a role word ("W/MD THORESON"); the second of two names after a plural relation word;
# "name is" then a whole name (those the shipped NER finds, which the fold weights missed,
# are kept as guards below).
@pytest.mark.parametrize("text,needle", [
    ("SOCIAL: SPOKE WITH PT'S SON COSTALES. WILL CALL BACK.", "COSTALES"),
    ("social- family in, son tiner consented for peg.", "tiner"),
    ("FREQUENT PVC'S. D. TINER AWARE. MG GIVEN.", "TINER"),
    ("GIVEN CARAFATE. AUTUMN AWARE-WILL START PROTONIX.", "AUTUMN"),
    ("social: pt's daughters edmonson and babs visited today.", "edmonson"),
])
def test_cued_names_the_lists_do_not_vouch_for(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


@pytest.mark.parametrize("text,needle", [
    ("NSR WITH PVC'S. HOLTZ VERNIA AWARE, MGSO4 GIVEN.", "HOLTZ"),
    ("ORDER DOUBLE CHECKED W/MD THORESON AS MED HELD X2.", "THORESON"),
    ("Social- Sons Lynell and Senter talked with attending.", "Senter"),
    ("wife unable to be reached, name is Rella Grider, phone # in book.", "Grider"),
])
def test_cued_names_the_shipped_ner_finds(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


# ... and the words those cues meet that are no names.
@pytest.mark.parametrize("text,needle", [
    ("MD AWARE OF LOW UOP.", "MD"),
    ("TEAM AWARE, NO NEW ORDERS.", "TEAM"),
    ("resident aware, will re-eval.", "resident"),
    ("FAMILY AWARE OF PLAN.", "FAMILY"),
    ("PT IS AWARE OF DX.", "PT"),
    ("renal aware of k 5.9.", "renal"),
    ("daughters and sons visited today.", "sons"),
    ("son very upset, support given.", "very"),
    ("name is on the list for placement.", "list"),
])
@pytest.mark.parametrize("point", ["default"])
def test_words_near_those_cues_stay(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


@pytest.mark.parametrize("text,needle", [
    ('pts daughter states edema was noted by pt.', "states"),
    ("U/O 10CC. MIDLEVELS AWARE. CONTINUE TO MONITOR.", "MIDLEVELS"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_verbs_and_staff_words_after_the_new_cues_stay(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


# More cues found by the name swap: the second name after a plural relation word
# ("daughters nenita and filler"), a relation word with a doubt mark ("wife(?) Coppin"),
# a contact person or spokesperson; a US town that is a rare given name before its floor.
@pytest.mark.parametrize("text,needle", [
    ("social: daughters nenita and filler in to visit today.", "filler"),
    ("emergency contact: carraway, cell in chart.", "carraway"),
])
def test_more_relation_cues(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


# (the shipped NER finds these; the fold weights missed them)
@pytest.mark.parametrize("text,needle", [
    ("SOCIAL-wife(?) Coppin in to visit-seems very devoted.", "Coppin"),
    ("LIMIT PHONE CALLS TO ONE CONTACT PERSON (WINDOM).", "WINDOM"),
    ("pt spokesperson is Alva Burnham his niece.", "Alva"),
])
def test_more_relation_cues_the_shipped_ner_finds(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


def test_a_town_before_its_floor(deid: Any) -> None:
    assert "LOCATION" in types_around(deid, "? increase lopressor dose, leonia 2", "leonia")


# A surname after a role word, and the second word of a name after a title, that only
# look like inflected words ("THORESEN", "songer" = song + er); a nurse named in full.
def test_second_word_after_a_title_that_reads_as_inflected(deid: Any) -> None:
    text = "gtt titrated per ccu staff. dr pellham songer. art line in place."
    assert "NAME" in types_around(deid, text, "songer")


# (the shipped NER finds these; the fold weights missed them)
@pytest.mark.parametrize("text,needle", [
    ("ORDER DOUBLE CHECKED W/MD GOSSER AS MED HELD X 2 DAYS.", "GOSSER"),
    ("pt admits to psych nurse tambra hasty that she drinks.", "tambra"),
])
def test_surnames_after_roles_the_shipped_ner_finds(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


# A role word, a name, then "aware": the name may be a dictionary word ("NP gentile made
# aware") or a surname whose singular is a famous person's ("NP MOORES AWARE").
@pytest.mark.parametrize("text,needle", [
    ("sinus at 40. NP gentile made aware, eps consulted.", "gentile"),
    ("CVP 15, FEBRILE. NP MOORES AWARE. PIGTAIL CATH IN.", "MOORES"),
])
def test_role_then_name_then_aware(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


# An initial before a surname the rules found stayed visible ("H DOCKERY ORDERED", "per E
# edie", "Reported to A. Marcel"): the name span takes it in.
@pytest.mark.parametrize("text,needle", [
    ("UOP DROPPED WITH ELEVATED PAPS, H DOCKERY ORDERED EPI DRIP.", "H DOCKERY"),
    ("sbp 120 to 135 per E edie. pacing wires attached.", "E edie"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_an_initial_before_a_found_surname(deid: Any, text: str, needle: str, point: str) -> None:
    assert "NAME" in types_around(deid, text, needle, point=point)


@pytest.mark.parametrize("text,needle", [
    ("gave a Tylenol for pain.", "a"),
    ("pt says i feel better.", "i"),
])
def test_a_word_of_one_letter_before_a_word_stays(deid: Any, text: str, needle: str) -> None:
    assert covering(deid, text, f" {needle} ", point="recall") == []


# ... but not one-letter shorthand before a word the recall point masks ("T max", "s/p
# ami", "x ray", "w max assist", "L foor").
@pytest.mark.parametrize("text,needle", [
    ("ID: T max 101.2. Pan Cx.", "T"),
    ("a/p- s/p ami with in stent thrombus.", "p"),
    ("continues vanco, x ray in am.", "x"),
    ("stands w max assist of 2.", "w"),
    ("R foot cool, L foor warm.", "L"),
])
def test_one_letter_shorthand_before_a_masked_word_stays(deid: Any, text: str, needle: str) -> None:
    i = text.index(f"{needle} ")
    assert not [e for e in deid.analyze(text, point="recall") if e.start <= i < e.end]


# A person's name that holds a state's ("Virginia Phillips") is a name, not a place.
def test_a_name_holding_a_state_is_a_name(deid: Any) -> None:
    text = "CHIEF COMPLAINT\n\nVirginia Phillips is a 45-year-old female."
    assert types_around(deid, text, "Virginia Phillips") == ["NAME"]


# Seen on the dev notes after this round's first changes: a facility guess that runs over a
# name and ordinary words ("... MAKING MS SANTANGELO HEALTH CARE DECISIONS") must not
# replace the name; a clinical word before a name before "aware" is no part of it.
def test_a_long_guess_of_ordinary_words_does_not_swallow_a_name(deid: Any) -> None:
    text = "PER DAVID, HE HAS BEEN MAKING MS SANTANGELO HEALTH CARE DECISIONS BUT HE IS TIRED."
    assert not covering(deid, text, "MAKING")
    assert "NAME" in types_around(deid, text, "SANTANGELO")


def test_a_clinical_word_before_a_name_before_aware_stays(deid: Any) -> None:
    text = "RUN OF VENT BIGEMINY BEA TURA AWARE MGSO4 GIVEN."
    assert not covering(deid, text, "BIGEMINY")
    assert "NAME" in types_around(deid, text, "BEA TURA")


# A common given name that dictionaries list only as a person ("DAVID"), after "per", was
# kept at the default point (an ordinary word to the rules).
@pytest.mark.parametrize("text,needle", [
    ("NG RESP STATUS. PER DAVID, HE HAS BEEN TIRED.", "DAVID"),
    ("plan d/w paul, will hold heparin.", "paul"),
])
def test_a_common_given_name_listed_as_a_person_after_a_cue(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


@pytest.mark.parametrize("text,needle", [
    ("f/u appt by april, per pcp.", "april"),
    ("pt tolerating with grace and humor.", "grace"),
])
def test_months_and_words_after_those_cues_are_no_names(deid: Any, text: str, needle: str) -> None:
    assert "NAME" not in [e.type for e in covering(deid, text, needle)]  # "april" is a date


# "max" (maximum: "max assist", "T max") is nursing shorthand, though a given name: after a
# relation word or a title it is still a name.
@pytest.mark.parametrize("text,needle", [
    ("TURNED SIDE TO SIDE WITH MAX ASSIST 2.", "MAX"),
    ("pt pivot to chair with max assistance.", "max"),
    ("ID: T max 101.2. Pan Cx.", "max"),
])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_max_is_shorthand(deid: Any, text: str, needle: str, point: str) -> None:
    assert covering(deid, text, needle, point=point) == []


@pytest.mark.parametrize("text,needle", [
    ("son max visited, updated on plan.", "max"),
    ("Seen by Dr. Max Fischer today.", "Max"),
])
def test_max_after_a_cue_is_a_name(deid: Any, text: str, needle: str) -> None:
    assert "NAME" in types_around(deid, text, needle)


# Read in a whole invented note at the end of the round: a clinical word in capitals before
# a comma and a found name ("VENT BIGEMINY, H DOCKERY AWARE") was listed with the name.
@pytest.mark.parametrize("point", ["default", "recall"])
def test_a_clinical_word_in_capitals_before_a_listed_name_stays(deid: Any, point: str) -> None:
    text = "CV: RUN OF VENT BIGEMINY, H DOCKERY AWARE, MG GIVEN."
    assert covering(deid, text, "BIGEMINY", point=point) == []
    assert "NAME" in types_around(deid, text, "H DOCKERY", point=point)


# Seen in an ACI-Bench note in the review: a credential after a name and a comma was listed
# with the name once capitals needed a Census name ("PA" is one).
def test_a_credential_after_a_name_and_a_comma_stays(deid: Any) -> None:
    text = "The patient was last seen in clinic by Ruth Sanchez, PA in 03/2021."
    assert covering(deid, text, "PA") == []
