"""What the NLP engine hands the recognizers (issue 12, speed, second round).

Presidio's ``process_batch`` rebuilt every Doc's text from its tokens (one Token object
per token) only to yield it, and every ``NlpArtifacts`` computed lemmas and context
keywords that only the context enhancer reads, for the few recognizers that have context
words. Noteward's engine yields the text it was given and computes those lists when first
read; what they hold must be exactly what Presidio's own conversion gives. Speed itself
is measured by ``noteward bench deid``, never here."""

from __future__ import annotations

from typing import Any

from noteward.deid.engine import nlp_engine

_NOTES = [
    "Pt seen by Dr. Nakamura 3/14, dtr laverne at bedside. Trans to GH cath lab. Pager 83554.",
    "NEURO: A+Ox3, MAE. CV: SR 80s, SBP 110-130. Resp: LS clear, sxn'd small amt. Wife Mary called.",
    "Lives in Catonsville with son Nick; PCP Q. LANDER MD. Phone (410) 555-0199. MI '92.\n\n  end",
    "Patient's MRN: 4455-12 ; contact: John Smith at john@example.org, SSN 078-05-1120.",
]


def _stock(engine: Any, text: str) -> Any:
    """Presidio's own conversion of the same Doc (the base class's method)."""
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    doc = engine.nlp["en"](text)
    return SpacyNlpEngine._doc_to_nlp_artifact(engine, doc, "en")


def test_batch_yields_the_given_text_and_reads_lists_lazily(deid: Any) -> None:
    engine = nlp_engine()
    out = list(engine.process_batch(_NOTES, language="en", batch_size=2))
    assert len(out) == len(_NOTES)
    for given, (text, art) in zip(_NOTES, out, strict=True):
        assert text is given  # not rebuilt from the tokens
        assert "keywords" not in vars(art) and "lemmas" not in vars(art)
        assert [t.text for t in art.tokens] == [t.text for t in engine.nlp["en"](given)]


def test_artifacts_equal_presidio_own(deid: Any) -> None:
    engine = nlp_engine()
    for given, (_, art) in zip(
        _NOTES, engine.process_batch(_NOTES, language="en", batch_size=2), strict=True
    ):
        ref = _stock(engine, given)
        assert [(e.start_char, e.end_char, e.label_) for e in art.entities] == [
            (e.start_char, e.end_char, e.label_) for e in ref.entities
        ]
        assert [t.idx for t in art.tokens] == [t.idx for t in ref.tokens]
        assert art.tokens_indices == ref.tokens_indices
        assert art.lemmas == ref.lemmas
        assert art.keywords == ref.keywords
        assert art.scores == ref.scores
        single = engine.process_text(given, "en")
        assert single.keywords == ref.keywords and single.lemmas == ref.lemmas


def test_artifacts_to_json_holds_every_list(deid: Any) -> None:
    """Presidio's decision-process log serialises the artifacts: the lazy lists too."""
    import json

    ((_, art),) = list(nlp_engine().process_batch(_NOTES[:1], language="en"))
    data = json.loads(art.to_json())
    assert {"tokens", "lemmas", "keywords", "tokens_indices", "entities", "scores"} <= set(data)
