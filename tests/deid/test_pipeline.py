"""How the de-identification pipeline runs (issue 12, speed): what spaCy computes and
that the batched path finds what the single-text path finds. Speed itself is measured by
``noteward bench deid``, never here."""

from __future__ import annotations

from typing import Any

import pytest

from noteward.deid.engine import Deidentifier, nlp_engine

_NOTES = [
    "Pt seen by Dr. Nakamura 3/14, dtr laverne at bedside. Trans to GH cath lab. Pager 83554.",
    "",
    "NEURO: A+Ox3, MAE. CV: SR 80s, SBP 110-130. Resp: LS clear, sxn'd small amt. Wife Mary called.",
    "   ",
    "Lives in Catonsville with son Nick; PCP Q. LANDER MD. Phone (410) 555-0199. MI '92.",
]


def test_only_the_ner_runs(deid: Any) -> None:
    nlp = nlp_engine().nlp["en"]
    assert nlp.pipe_names == ["ner"]
    # disabled, not excluded: the lemmatizer's tables still say what an English word is
    assert "lemmatizer" in nlp.component_names


def test_english_word_list_still_loaded(deid: Any) -> None:
    from noteward.deid.engine import _shared

    vocab = _shared["vocab"]
    assert len(vocab.english) > 50_000
    assert vocab.known_word("appears") and not vocab.known_word("nakamura")


@pytest.mark.parametrize("batch_size", [1, 2, 16])
@pytest.mark.parametrize("point", ["default", "recall"])
def test_batched_equals_single(deid: Any, batch_size: int, point: str) -> None:
    many = deid.analyze_many(_NOTES, batch_size=batch_size, point=point)
    assert [[(e.type, e.start, e.end) for e in ents] for ents in many] == [
        [(e.type, e.start, e.end) for e in deid.analyze(t, point=point)] for t in _NOTES
    ]
    assert many[1] == [] and many[3] == [] and many[0] and many[4]


def test_blas_thread_limit_is_restored(deid: Any) -> None:
    """The NER runs BLAS on one thread; the process's own setting comes back after."""
    from threadpoolctl import threadpool_info

    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    Deidentifier().analyze(_NOTES[0])
    Deidentifier().analyze_many(_NOTES)
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before
