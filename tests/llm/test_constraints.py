"""Numbers only from the sources: the decoding constraint, on a toy vocabulary and the real model."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from noteward.llm.constraints import NumberVocab, SourceNumbersOnly

VOCAB = ["a", " mg", ".", " ", "1", "2", "0", "5", "10", " 2", " 20", "x", ",", "<eos>"]
IDS = {t: i for i, t in enumerate(VOCAB)}
SOURCE = ["Lisinopril 20 mg daily, then 2.5 mg"]


def _allowed(written: list[str], sources: list[str] = SOURCE) -> list[str]:
    proc = SourceNumbersOnly(sources, NumberVocab(VOCAB), 3, lambda ids: "".join(VOCAB[i] for i in ids))
    scores = np.zeros(len(VOCAB), dtype=np.float32)
    out = proc(np.array([0, 0, 0] + [IDS[w] for w in written]), scores)
    return sorted(VOCAB[i] for i in range(len(VOCAB)) if out[i] > -np.inf)


@pytest.mark.parametrize(
    ("written", "allowed", "banned"),
    [
        ([], [" 2", " 20", "2", " mg", "a"], ["1", "0", "5", "10"]),  # a number may start only as a source one
        ([" 2"], [".", "0"], [" mg", " ", "5", " 2", "<eos>"]),  # "2" alone is not a source number: go on
        ([" 2", "."], ["5"], [" ", " mg", "0", "<eos>"]),  # "2." must become "2.5"
        ([" 20"], [" mg", ".", " ", "<eos>"], ["0", "5", "1"]),  # "20" is complete; "200" is not there
        ([" 20", "."], [" ", "<eos>"], ["5", "0"]),  # sentence end, not "20.5"
        ([" 2", ".", "5"], [" mg", " "], ["0"]),
        (["x"], ["1", "0"], []),  # "x1" is not a number for the aligner either
    ],
)
def test_only_source_numbers_can_be_written(written: list[str], allowed: list[str], banned: list[str]) -> None:
    ok = _allowed(written)
    assert set(allowed) <= set(ok), (written, ok)
    assert not set(banned) & set(ok), (written, ok)


def test_without_numbers_in_the_sources_no_number_can_start() -> None:
    ok = _allowed([], ["No numbers here at all."])
    assert not [t for t in ok if re.search(r"\d", t) and not t.startswith("x")]


@pytest.mark.slow
def test_the_real_model_cannot_write_a_number_missing_from_the_sources(smollm_runtime: Any) -> None:
    rt = smollm_runtime
    prompt = rt.format_prompt("Copy this sentence exactly: The dose is 25 mg twice a day.")
    free = rt.generate(prompt, max_tokens=24, reuse_cache=False)
    assert "25" in free.text  # the test can fail: unconstrained, the model copies 25
    held = rt.generate(prompt, max_tokens=24, reuse_cache=False, numbers_from=("The dose is 10 mg twice a day.",))
    written = set(re.findall(r"(?<![A-Za-z])\d+(?:[.,]\d+)*", held.text))
    assert written <= {"10"}, held.text
    assert "25" not in held.text
