"""The checker that catches invented facts: drugs, sides, sex, stitched notes, past as current.

Imports of the new modules sit inside the tests: the tests were written before them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import require_shared
from tests.support.cli import noteward

NOTES = {
    "n1": (
        "Patient is a 61 year-old female.\n"
        "# History of Present Illness\n"
        "She has a history of asthma and had a stroke in 2015.\n"
        "Right knee pain after a fall; x-ray of the right knee was normal.\n"
        "Her daughter drove her to the visit.\n"
        "# Medications\n"
        "lisinopril 10 mg oral tablet; 1 ml epoetin alfa 4000 unt/ml injection [epogen]\n"
    ),
    "n2": (
        "# Assessment and Plan\n"
        "Ultrasound of the thyroid shows a 2 cm nodule in the left lobe.\n"
        "Follow up with endocrinology in three months for a repeat ultrasound.\n"
    ),
}


def _align(sentence: str, sex: str | None = "female", **kw: Any) -> Any:
    from noteward.llm.grounding import SourceIndex

    return SourceIndex(NOTES, **kw).align(sentence, patient_sex=sex)


@pytest.mark.parametrize(
    ("sentence", "supported", "reason"),
    [
        # reworded but true: every fact word is in the cited note
        ("She has right knee pain after a fall.", True, None),
        ("lisinopril 10 mg oral tablet", True, None),
        ("The thyroid ultrasound shows a 2 cm nodule in the left lobe.", True, None),
        # an invented drug with a real dose (the model's "Nitrilite 4000 unt/ml")
        ("Nitrilite 4000 unt/ml injection [nitrilite]", False, "not in sources"),
        ("Zorvexan 10 mg oral tablet", False, "possible drug"),
        # a real drug the notes never name
        ("warfarin 10 mg oral tablet", False, "drug"),
        # side flipped
        ("She has left knee pain after a fall.", False, "side"),
        ("Ultrasound of the thyroid shows a 2 cm nodule in the right lobe.", False, "side"),
        # pronoun or sex against the record (female)
        ("He has right knee pain after a fall.", False, "sex"),
        ("Patient is a 61 year-old male.", False, "sex"),
        # a relative the notes do not mention
        ("Her son drove her to the visit.", False, "person"),
        ("Her daughter drove her to the visit.", True, None),
        # a condition or body site the notes do not hold
        ("She has a history of asthma and diabetes.", False, "condition"),
        ("She has left hip pain after a fall.", False, None),
        # two notes stitched together
        ("Right knee pain after a fall with a 2 cm nodule in the left lobe.", False, "stitched"),
        # a past event stated as current
        ("She currently has a stroke.", False, "past event"),
        ("She presents with asthma today.", False, "past event"),
        ("She has a history of asthma.", True, None),
    ],
)
def test_invented_facts_are_flagged(sentence: str, supported: bool, reason: str | None) -> None:
    al = _align(sentence)
    assert al.supported is supported, al.reasons
    if reason:
        assert any(reason in r for r in al.reasons), al.reasons


def test_sex_is_read_from_the_cited_notes_when_the_record_has_none() -> None:
    assert not _align("He has right knee pain after a fall.", sex=None).supported
    assert _align("She has right knee pain after a fall.", sex=None).supported


def test_pronouns_of_a_relative_are_not_the_patients() -> None:
    from noteward.llm.grounding import SourceIndex

    notes = {"n": "Her husband has diabetes. He checks his sugars daily."}
    assert (
        SourceIndex(notes)
        .align("Her husband checks his sugars daily.", patient_sex="female")
        .supported
    )


def test_vault_names_teach_the_vocabulary_a_drug_the_package_does_not_know() -> None:
    from noteward.llm.lexicon import DRUG, UNKNOWN, default_vocabulary, vocabulary_from_names

    base = default_vocabulary()
    assert base.kind("lisinopril") == DRUG  # from the drug-named-entity-recognition package
    assert base.kind("zorvexan") == UNKNOWN  # nobody knows it: a possible drug
    assert base.kind("yesterday") is None  # everyday English is harmless
    vocab = vocabulary_from_names(
        ["Zorvexan 10 MG Oral Tablet"], ["Chronic kidney disease stage 3 (disorder)"]
    )
    assert vocab.kind("zorvexan") == DRUG
    assert "zorvexan" not in base.drugs  # the default is not changed by a vault's names


def test_lay_words_and_derivations_support_clinical_words() -> None:
    from noteward.llm.grounding import SourceIndex

    index = SourceIndex({"d": "Patient: My blood pressure has been high and I feel lightheaded."})
    assert index.align("He reports hypertension and lightheadedness.", patient_sex="male").supported


def test_spelled_numbers_in_a_dialogue_support_digits() -> None:
    from noteward.llm.grounding import SourceIndex

    index = SourceIndex(
        {
            "d": "Doctor: How old are you?\nPatient: I'm twenty six.\nPatient: My back hurts since April fifteenth two thousand five."
        }
    )
    assert index.align("The patient is 26 years old.", patient_sex="female").supported
    assert index.align("Back pain since 04/15/2005.", patient_sex="female").supported
    assert not index.align("The patient is 27 years old.", patient_sex="female").supported


def test_a_question_answered_no_is_a_denial() -> None:
    from noteward.llm.grounding import SourceIndex

    index = SourceIndex(
        {
            "d": "Doctor: Any neck pain?\nPatient: No, nothing there.\nDoctor: Any fever?\nPatient: Yes, last night."
        }
    )
    assert index.align("He denies any neck pain.", patient_sex="male").supported
    assert not index.align("He reports neck pain.", patient_sex="male").supported
    assert not index.align("He denies fever.", patient_sex="male").supported


def test_existing_callers_keep_working_without_the_new_arguments() -> None:
    from noteward.llm.grounding import SourceIndex, align_sentence, check_critical

    assert align_sentence("lisinopril 10 mg oral tablet", NOTES).supported
    assert SourceIndex(NOTES).align("lisinopril 10 mg oral tablet", [0]).supported
    assert check_critical("lisinopril 20 mg", "lisinopril 10 mg", "lisinopril 10 mg")


# ---- the perturbation report on the shared corpora ------------------------------------------


@pytest.fixture(scope="module")
def report() -> Any:
    require_shared("mts_dialog", "MTS-Dialog-ValidationSet.csv")
    require_shared("aci_bench", "valid.csv")
    require_shared("synthea_fhir", "DocumentReference.000.ndjson")
    from noteward.llm.checker_eval import grounding_report

    rep = grounding_report(per_kind=200, seed=7)
    print("\n".join(rep.lines()))
    return rep


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize(
    "kind", ["invented_drug", "side_flipped", "sex_flipped", "stitched", "past_as_current"]
)
def test_each_perturbation_kind_is_flagged(report: Any, kind: str) -> None:
    """Real MTS-Dialog, ACI-Bench and Synthea sentences changed the ways small models err:
    at least 95% of each kind flagged (a fixed seeded sample of up to 200 per kind)."""
    rate = report.kinds[kind]
    assert rate.n >= 100, (kind, rate.n)
    assert rate.share >= 0.95, (kind, rate.flagged, rate.n)


@pytest.mark.slow
@pytest.mark.shared_data
def test_verbatim_source_sentences_are_not_flagged(report: Any) -> None:
    assert report.verbatim.n >= 150
    assert report.verbatim.share <= 0.05, (report.verbatim.flagged, report.verbatim.n)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.xfail(
    strict=True,
    reason="MTS-Dialog references are still flagged above 25% (31.3% validation, halves 29.9 / "
    "32.3; ACI-Bench 23.6%, halves 25.2 / 22.1): about half the flags left on the training "
    "references are right (exam and ROS templates, chart ages, dates, handedness, questions "
    "never asked), the rest need meaning a word-level checker lacks (lay paraphrase, "
    "negation said in other words); see the reason breakdown of `noteward eval checker`",
)
def test_human_reference_sentences_are_mostly_accepted(report: Any) -> None:
    for corpus, rate in report.human.items():
        assert rate.n >= 200, corpus
        assert rate.share <= 0.25, (corpus, rate.flagged, rate.n)


@pytest.mark.slow
@pytest.mark.shared_data
def test_flagged_references_are_broken_down_by_reason_and_by_half(report: Any) -> None:
    """Each flagged human reference counts under every rule that flagged it (and under
    "only" when it was the sole rule), so the rules that overreach can be read off; the
    references are split by a hash of their id into a tuning half and a report half."""
    from noteward.llm.checker_eval import reason_category

    assert reason_category("sources cover 33% of the sentence") == "sources cover too little"
    assert reason_category("number not in sources: 39") == "number not in sources"
    assert reason_category("person not in sources: dad") == "person not in sources"
    for corpus, rate in report.human.items():
        assert rate.flagged > 0
        assert sum(rate.reasons.values()) >= rate.flagged, corpus
        assert sum(rate.only.values()) <= rate.flagged, corpus
        assert all(not any(ch.isdigit() for ch in r) for r in rate.reasons), rate.reasons
        tune, rep = report.human_halves[corpus]["tune"], report.human_halves[corpus]["report"]
        assert tune.n > 0 and rep.n > 0 and tune.n + rep.n == rate.n, corpus
        assert tune.flagged + rep.flagged == rate.flagged, corpus
    text = "\n".join(report.lines())
    assert "why flagged" in text and "human reference: mts_dialog (report half)" in text
    assert "reasons" in report.to_json()["human_reference"]["aci_bench"]


@pytest.mark.slow
@pytest.mark.shared_data
def test_eval_checker_command_prints_the_table() -> None:
    require_shared("mts_dialog", "MTS-Dialog-ValidationSet.csv")
    out = noteward("eval", "checker", "--per-kind", "20", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for row in (
        "perturbed: invented_drug",
        "perturbed: stitched",
        "verbatim source sentences",
        "human reference: mts_dialog",
        "human reference: aci_bench",
        "ms per sentence",
    ):
        assert row in out.stdout, out.stdout


def test_a_transcript_question_without_a_question_mark_answered_no_is_a_denial() -> None:
    """ACI-Bench transcripts drop punctuation: "[doctor] have you had any numbness" then
    "[patient] no": the reference's "She denies any numbness." is supported."""
    from noteward.llm.grounding import SourceIndex

    index = SourceIndex(
        {
            "d": "[doctor] okay and then have you experienced any numbness or tingling\n[patient] no\n"
        }
    )
    assert index.align("She denies any numbness or tingling.", patient_sex="female").supported
    assert not index.align("She reports numbness and tingling.", patient_sex="female").supported


def test_folded_drug_names_that_are_english_words_are_not_drugs() -> None:
    from noteward.llm.lexicon import default_vocabulary

    vocab = default_vocabulary()
    assert vocab.kind("did") is None and vocab.kind("lisinopril") is not None


def test_reference_sentences_lose_their_inline_headers() -> None:
    """ "Musculoskeletal: 1+ pitting edema" states a finding; "Musculoskeletal" is structure
    the dialogue never says, and flagged the sentence as an unknown word."""
    from noteward.llm.checker_eval import note_sentences

    assert note_sentences(
        "• Musculoskeletal: 1+ pitting edema bilateral lower extremities.\n"
        "Patient Education and Counseling: I advised him to monitor his weight daily.\n"
    ) == [
        "1+ pitting edema bilateral lower extremities.",
        "I advised him to monitor his weight daily.",
    ]


def test_drug_words_are_cached_in_the_user_data_folder() -> None:
    """The package's dictionary takes seconds to unpickle; its drug words are kept in the
    (per-test) user data folder so the next process reads a small text file instead."""
    from noteward.llm import lexicon
    from noteward.settings import user_data_dir

    lexicon.package_drug_words.cache_clear()
    first = lexicon.package_drug_words()
    files = list((user_data_dir() / "cache").glob("drug-words-*.txt"))
    assert len(files) == 1
    lexicon.package_drug_words.cache_clear()
    assert lexicon.package_drug_words() == first


# ---- honest abstraction: what a reference writes from its dialogue -----------------------


@pytest.mark.parametrize(
    ("dialogue", "sentence", "sex"),
    [
        # everyday rewording ("states", "approximately", "serious") is not missing content
        (
            "Patient: I got stung about a month ago.\nDoctor: Any trouble breathing after that?"
            "\nPatient: No.",
            "The patient states he was stung approximately one month ago without any serious "
            "reaction.",
            "male",
        ),
        # a dialogue gives one fact per turn: every cited turn counts toward coverage
        (
            "Patient: I have gallstones.\nDoctor: Any medicines?\nPatient: Pepcid.",
            "She has a history of gallstones and takes Pepcid.",
            "female",
        ),
        # "why don't we" suggests; it negates nothing the sentence states
        (
            "[doctor] so the knee looks good . why don't we have you come back in two weeks "
            "and we will check the knee again",
            "We will have you come back in 2 weeks to check the knee.",
            "male",
        ),
    ],
)
def test_a_reference_written_from_its_dialogue_is_supported(
    dialogue: str, sentence: str, sex: str
) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex=sex)
    assert al.supported, al.reasons


def test_the_same_dialogue_still_flags_what_it_does_not_say() -> None:
    from noteward.llm.grounding import SourceIndex

    index = SourceIndex(
        {"d": "Patient: I have gallstones.\nDoctor: Any medicines?\nPatient: Pepcid."}
    )
    assert not index.align("She has gallstones and takes Zantac.", patient_sex="female").supported
    assert not index.align(
        "She has kidney stones and takes Pepcid.", patient_sex="female"
    ).supported


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        (
            "Patient: My hands have pins and needles all the time.",
            "She reports paresthesia in her hands.",
        ),
        ("Patient: I've been having black stools for a week.", "She reports melena for a week."),
        ("Patient: It's hard to swallow anything.", "She reports dysphagia."),
        (
            "Patient: Sometimes I leak urine when I cough.",
            "She reports urinary incontinence with cough.",
        ),
        ("Doctor: Your x-ray looks normal.", "Radiographic findings are unremarkable."),
        ("Patient: My feet have been swollen.", "She has foot swelling."),
        ("Patient: I had a mini stroke last year.", "She had a TIA last year."),
    ],
)
def test_lay_words_and_abbreviations_support_clinical_words(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert al.supported, al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        # a transcript spells acronyms out letter by letter
        ("Patient: I had an M R I of my knee last week.", "She had an MRI of the knee last week."),
        ("Patient: I have not had any U T Is since then.", "She has had no UTIs since then."),
        # decimals said with "point", years written with two digits
        ("Doctor: Your potassium level is three point one.", "Her potassium was 3.1."),
        (
            "Doctor: Your last chemo was on January eighteenth two thousand eight.",
            "Her last chemotherapy was on 01/18/08.",
        ),
        # "twice" is a dosing frequency only beside a drug or a dose; "daily" is "a day"
        (
            "Patient: My sister attempted suicide two times.",
            "Her sister attempted suicide twice.",
        ),
        (
            "Patient: I take metformin five hundred milligrams twice a day.",
            "She takes metformin 500 mg twice daily.",
        ),
        # note wording is no fact, even when general English does not know it
        ("Doctor: Come back and see me in two weeks.", "Followup in 2 weeks."),
    ],
)
def test_what_a_dialogue_says_in_other_forms_supports_the_reference(
    dialogue: str, sentence: str
) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert al.supported, al.reasons


def test_numbers_and_frequencies_the_dialogue_does_not_say_are_still_flagged() -> None:
    from noteward.llm.grounding import SourceIndex

    index = SourceIndex(
        {
            "d": "Patient: I take metformin five hundred milligrams twice a day.\nDoctor: Your potassium is three point one."
        }
    )
    assert not index.align(
        "She takes metformin 500 mg three times daily.", patient_sex="female"
    ).supported
    assert not index.align("She takes metformin 500 mg weekly.", patient_sex="female").supported
    assert not index.align("Her potassium was 3.4.", patient_sex="female").supported


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        # a negation ends where a new clause starts ("... and has lost")
        (
            "Patient: I've lost about eight pounds this week.\nDoctor: How is your appetite?"
            "\nPatient: I have no appetite.",
            "He has no appetite and has lost 8 pounds this week.",
        ),
        # a transcript runs through symptoms without a question mark
        (
            "[doctor] okay let's talk about some other symptoms any joint pain fever weight loss"
            "\n[patient] no",
            "Denies fever or weight loss.",
        ),
    ],
)
def test_negation_in_a_dialogue_is_read_turn_by_turn(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="male")
    assert al.supported, al.reasons


def test_a_denied_finding_stated_as_present_is_still_flagged() -> None:
    from noteward.llm.grounding import SourceIndex

    # "no" answers the question a turn ends with, not the findings stated before it
    exam = SourceIndex(
        {
            "d": "[doctor] your knee exam shows tenderness over the medial joint line . "
            "do you have any fever\n[patient] no"
        }
    )
    assert exam.align("Tenderness over the medial joint line.", patient_sex="male").supported
    assert not exam.align("Reports fever.", patient_sex="male").supported

    index = SourceIndex(
        {
            "d": "[doctor] okay let's talk about some other symptoms any joint pain fever weight loss\n[patient] no"
        }
    )
    assert not index.align("Reports fever and weight loss.", patient_sex="male").supported


def test_a_drug_named_in_its_own_turn_supports_the_sentence() -> None:
    from noteward.llm.grounding import SourceIndex

    index = SourceIndex(
        {
            "d": "Doctor: I know it's been a longstanding pain in both your arms, is anything "
            "helping?\nPatient: Yes, somewhat.\nPatient: Ah yes, I am taking Lyrica."
        }
    )
    said = "She is on {} for the pain in her arms, which has been somewhat helpful."
    assert index.align(said.format("Lyrica"), patient_sex="female").supported
    assert not index.align(said.format("Neurontin"), patient_sex="female").supported


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        # a possessive is its noun: "Hodgkin's" names what "Hodgkin" names
        (
            "Doctor: Any cancer in the family?\n"
            "Patient: Yes, my mother died of Hodgkin's Lymphoma.",
            "Her mother died of Hodgkin lymphoma.",
        ),
        # a paired body site in the plural is both sides; "right now" is no side
        (
            "Patient: The pain in these old knees has bothered me for a couple years now.",
            "She has had bilateral knee pain for a couple of years.",
        ),
        (
            "Doctor: How is the knee?\nPatient: At the moment it hurts when I walk.",
            "The knee hurts right now when she walks.",
        ),
        # an answer means its question: "smoking" is in the question the answer replies to
        (
            "Doctor: When did you stop smoking?\nPatient: About thirty years back.",
            "The patient used to smoke, but quit approximately 30 years ago.",
        ),
        # derivations: "surgical" and "surgeries" share a stem
        (
            "Doctor: Have you ever had any surgeries?\nPatient: No, none.",
            "No significant past surgical history.",
        ),
    ],
)
def test_honest_abstraction_of_a_dialogue_is_supported(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert al.supported, al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence", "reason"),
    [
        # one knee named: "bilateral" still needs both sides
        (
            "Patient: My right knee has been bothering me for a couple years now.",
            "She has had bilateral knee pain for a couple of years.",
            "side not in sources",
        ),
        # "right" beside a body site is a side, also with "now" later in the sentence
        (
            "Patient: My knee hurts when I walk.",
            "Her right knee hurts when she walks now.",
            "side not in sources",
        ),
        # a question answered "no" still denies: "yes" to it is a flipped negation
        (
            "Doctor: Have you ever had any major surgeries?\nPatient: No, none.",
            "She had major surgery.",
            "negation differs from the source",
        ),
    ],
)
def test_the_same_rewordings_with_a_wrong_fact_are_still_flagged(
    dialogue: str, sentence: str, reason: str
) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert not al.supported
    assert reason in al.reasons, al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        (
            "Patient: If I sleep on it a certain way the tingling wakes me up, it really bugs me.",
            "The tingling wakes her up and it is very bothersome for her.",
        ),
        (
            "Doctor: Where is the pain?\nPatient: Right here on the inside of my knee.",
            "She localizes her pain to the inside of her knee.",
        ),
    ],
)
def test_plain_english_words_are_no_possible_drugs(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert al.supported, al.reasons


@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        # an invented name is unknown to English: still a possible drug
        ("She takes Zalvexora 20 mg for the tingling.", "unknown word not in sources"),
        # clinical words and abbreviations stay facts the sources must hold
        (
            "She had a cardiac catheterization for the tingling.",
            ("condition, procedure", "unknown word"),
        ),
        ("She has diverticulitis and the tingling wakes her up.", "unknown word not in sources"),
        ("She has CHF and the tingling wakes her up.", "unknown word not in sources"),
        ("She has hypothyroidism and the tingling wakes her up.", "unknown word not in sources"),
    ],
)
def test_clinical_and_invented_words_stay_facts(
    sentence: str, reason: str | tuple[str, ...]
) -> None:
    from noteward.llm.grounding import SourceIndex

    dialogue = "Patient: If I sleep on it a certain way the tingling wakes me up."
    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert not al.supported
    assert any(r.startswith(reason) for r in al.reasons), al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        # the leading "No," answers the question; the rest of the turn is stated
        (
            "Doctor: Do you have children?\nPatient: No, I'm happily single right now.",
            "She is single with no children.",
        ),
        # "I don't remember what month" is no denial of the question
        (
            "Doctor: Do you remember when your last flu vaccine was?\n"
            "Patient: I don't remember what month, but it was in nineteen ninety nine.",
            "Her last flu vaccine was given in 1999.",
        ),
    ],
)
def test_an_answer_word_does_not_negate_the_rest_of_its_turn(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert al.supported, al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        ("Doctor: Any chest pain?\nPatient: No.", "She has chest pain."),
        (
            "Doctor: How is the knee?\nPatient: No pain in the knee at all.",
            "Her knee pain persists.",
        ),
        ("Doctor: Any chest pain?\nPatient: No, not at all.", "She reports chest pain."),
    ],
)
def test_a_denial_stays_a_denial(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert "negation differs from the source" in al.reasons, al.reasons


_KNEE_TURNS = (
    "Doctor: Does the knee hurt when you bend it?\nPatient: Yes, it hurts when I bend it.\n"
    "Doctor: And the swelling?\nPatient: It swells after I walk."
)


def test_a_side_named_once_in_the_dialogue_supports_its_body_site() -> None:
    from noteward.llm.grounding import SourceIndex

    dialogue = "Patient: I twisted my right knee skiing last week.\n" + _KNEE_TURNS
    al = SourceIndex({"d": dialogue}).align(
        "Her right knee hurts when she bends it.", patient_sex="female"
    )
    assert al.supported, al.reasons


@pytest.mark.parametrize(
    "first_turn",
    [
        # the other side: a flipped side
        "Patient: I twisted my left knee skiing last week.",
        # the side names another body site
        "Patient: I twisted my right ankle skiing last week.",
    ],
)
def test_a_side_the_dialogue_does_not_give_that_body_site_is_still_flagged(
    first_turn: str,
) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": first_turn + "\n" + _KNEE_TURNS}).align(
        "Her right knee hurts when she bends it.", patient_sex="female"
    )
    assert "side not in sources" in al.reasons, al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        # the sentence abbreviates what the dialogue spells out
        (
            "Doctor: Who prescribes your medicines?\n"
            "Patient: My primary care physician does, every year.",
            "Her PCP prescribes her medicines every year.",
        ),
        # the sentence spells out what the dialogue abbreviates
        (
            "Doctor: Any lung problems?\nPatient: Yes, I have C O P D from smoking.",
            "She has chronic obstructive pulmonary disease from smoking.",
        ),
        # one word in the sentence, two in the dialogue
        (
            "Doctor: Does it hurt when I push your foot down?\n"
            "Patient: No.\nDoctor: Okay, no pain on plantar flexion.",
            "No pain on plantarflexion of her foot.",
        ),
    ],
)
def test_acronyms_and_compounds_said_otherwise_support_the_sentence(
    dialogue: str, sentence: str
) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert al.supported, al.reasons


@pytest.mark.parametrize(
    "sentence",
    [
        # "right hand first" is a chance run of initials, not what RHF stands for
        "This RHF uses her right hand first for most things.",
        # an invented name is never split into words the dialogue holds
        "She takes Handfirstol for her right hand.",
    ],
)
def test_chance_initials_and_invented_names_stay_unsupported(sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    dialogue = "Patient: I use my right hand first for most things, doctor."
    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="female")
    assert "unknown word not in sources (possible drug)" in al.reasons, al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        (
            "Doctor: Do you drink?\nPatient: I was a heavy drinker, but I quit in the seventies.",
            "He was a heavy drinker until the 1970s.",
        ),
        ("Patient: My mom had a stroke in her seventies.", "Mother suffered stroke in her 70's."),
        (
            "Doctor: When did you fall?\nPatient: In October O eight, I fell again.",
            "He fell again in October of 2008.",
        ),
        (
            "Doctor: Which dose did he start?\nDoctor_2: He started a point six M G of "
            "colchicine daily.",
            "He started colchicine 0.6 mg daily.",
        ),
    ],
)
def test_decades_and_spoken_years_support_the_numbers(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="male")
    assert al.supported, al.reasons


@pytest.mark.parametrize(
    ("dialogue", "sentence"),
    [
        ("Patient: My mom had a stroke in her seventies.", "Mother suffered stroke in her 80s."),
        (
            "Doctor: When did you fall?\nPatient: In October O eight, I fell again.",
            "He fell again in October of 2009.",
        ),
    ],
)
def test_other_decades_and_years_are_still_flagged(dialogue: str, sentence: str) -> None:
    from noteward.llm.grounding import SourceIndex

    al = SourceIndex({"d": dialogue}).align(sentence, patient_sex="male")
    assert any(r.startswith("number not in sources") for r in al.reasons), al.reasons
