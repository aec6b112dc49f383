"""The grounded-v1 prompt format shared with training."""

from __future__ import annotations

import pytest

from noteward.core.models import SECTIONS
from noteward.llm import prompts


def test_prompt_numbers_sentences_and_keeps_instruction() -> None:
    text = prompts.build_user_prompt(["First fact.", "Second\nfact  here."])
    assert text.startswith("Summarize these clinical notes for a clinician.")
    assert text.endswith("Sentences:\n[S1] First fact.\n[S2] Second fact here.\n")
    assert prompts.PROMPT_VERSION == "grounded-v1"
    assert prompts.SECTIONS == SECTIONS
    assert prompts.build_base_prompt(["x y"]).endswith("[S1] x y\n\nSummary:\n")


def test_target_round_trips_in_section_order() -> None:
    bullets = [
        ("Plan", "Renal dialysis", [12]),
        ("Problems", "Chronic kidney disease stage 3", [2]),
        ("Medications", "Lisinopril 10 mg oral tablet", [5, 9]),
    ]
    target = prompts.format_target(bullets)
    assert target == (
        "Problems:\n- Chronic kidney disease stage 3 [S2]\nMedications:\n"
        "- Lisinopril 10 mg oral tablet [S5][S9]\nPlan:\n- Renal dialysis [S12]\n"
    )
    assert prompts.parse_output(target) == [bullets[1], bullets[2], bullets[0]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Problems:\n- CKD [S1]\n- half writ", [("Problems", "CKD", [1])]),  # partial line withheld
        (
            "**Medications:**\n* aspirin 81 mg [S3], [S4]\n",
            [("Medications", "aspirin 81 mg", [3, 4])],
        ),
        ("- stray bullet\n", [("Other", "stray bullet", [])]),
        ("Sentences:\nS2. copied line\n", [("Other", "copied line", [2])]),
        ("Free prose without format\n", []),
        ("Meds:\n1. metformin [S7]\n", [("Medications", "metformin", [7])]),
    ],
)
def test_parse_output_is_tolerant(text: str, expected: list[tuple[str, str, list[int]]]) -> None:
    assert prompts.parse_output(text) == expected


@pytest.mark.parametrize(
    ("bullet", "text", "ids"),
    [
        ("tree nut allergy [S30.5]", "tree nut allergy", [30]),
        ("mold allergy [S3, S4]", "mold allergy", [3, 4]),
        ("asthma [S2-S5].", "asthma", [2, 5]),
        ("aspirin 81 mg [S3]", "aspirin 81 mg", [3]),
    ],
)
def test_malformed_citations_never_stay_in_the_sentence(bullet: str, text: str, ids: list[int]) -> None:
    """A citation the model wrote badly ("[S30.5]", seen from the shipped model) is still a
    citation: its digits must not stay in the sentence, where the checker reads them as
    invented numbers."""
    assert prompts.split_citations(bullet) == (text, ids)
