"""The checker inside the product: the summarizer judges the model's sentences with the
patient's own vocabulary and sex, and unchecked sentences stay out of approved summaries.

The vault is the real one of the shared Synthea patients (``content_vault``). The model's
output is the real runtime's (tokenizer, prompt), but what it writes is scripted: the real
model cannot be made to write a chosen invented fact on demand, and the point is the path
its bullets take (streamed lines, parsing, placing, checking, saving).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from noteward.llm.runtime import GenerationResult

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

LONG = "79a66c97"  # 708 notes; the FHIR conditions name "coronary" disease
SMALL = "63ee2253"  # 15 notes; a boy whose record names ibuprofen, never warfarin


class ScriptedRuntime:
    """The real runtime, except that a generation "writes" the given text, line by line."""

    def __init__(self, real: Any, text: str) -> None:
        self.real, self.text = real, text

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def submit(self, prompt: str, *, on_token: Any = None, **_kw: Any) -> Future[GenerationResult]:
        for line in self.text.splitlines(keepends=True):
            if on_token is not None:
                on_token(line)
        fut: Future[GenerationResult] = Future()
        n = len(self.real.tokenize(self.text))
        fut.set_result(GenerationResult(self.text, 0, n, 1.0, 2.0, 1.0, "stop"))
        return fut


def patient(vault: Any, prefix: str) -> Any:
    return next(p for p in vault.patients() if (p.source_id or "").startswith(prefix))


@pytest.fixture
def scripted(smollm_runtime: Any) -> Iterator[Any]:
    """A summary service whose model writes what the test says."""
    from noteward.llm.summarizer import SummaryService

    svc = SummaryService(model_id="smollm2-135m-instruct-q4_1", threads=2, max_new_tokens=48)

    def run(vault: Any, prefix: str, text: str, save: bool = False) -> Any:
        svc._runtime = ScriptedRuntime(smollm_runtime, text)
        return svc.summarize_patient(vault, patient(vault, prefix).id, save=save)

    yield run
    svc._runtime = None  # the session fixture closes the real runtime


def model_sentence(summary: Any, word: str) -> Any:
    hits = [s for s in summary.sentences if s.origin == "model" and word in s.text.lower()]
    assert hits, f"the scripted sentence naming {word!r} is not in the summary"
    return hits[0]


def test_a_model_sentence_naming_a_drug_absent_from_the_record_is_flagged(
    content_vault: Any, scripted: Any
) -> None:
    out = scripted(content_vault, SMALL, "Medications:\n- He was started on warfarin for a clot in the leg.\n")
    s = model_sentence(out, "warfarin")
    assert not s.supported and s.support < 0.5


def test_a_condition_the_record_names_but_the_cited_notes_lack_is_flagged(
    content_vault: Any, scripted: Any
) -> None:
    """ "coronary" is everyday English to a general word list; the patient's FHIR condition
    names make it a condition, which the cited notes must then hold."""
    out = scripted(content_vault, LONG, "Problems:\n- She had a coronary and was seen for follow-up.\n")
    s = model_sentence(out, "coronary")
    assert not s.supported


# -- approval: unchecked sentences never enter an approved summary unedited ----------------

UNSUPPORTED = "He was started on warfarin for a clot in the leg."


def test_approval_leaves_out_unsupported_sentences_unless_edited(content_vault: Any, scripted: Any) -> None:
    from noteward.core.models import UNSUPPORTED_MARK
    from noteward.llm.summarizer import approval_text, load_summary, save_approved

    out = scripted(content_vault, SMALL, f"Medications:\n- {UNSUPPORTED}\n", save=True)
    assert out.summary_id and not model_sentence(out, "warfarin").supported
    supported = [s.text for s in out.sentences if s.supported]
    assert supported, "nothing supported to approve"

    # the text offered for approval holds every sentence, the unchecked one marked
    offered = approval_text(out)
    assert f"- {UNSUPPORTED_MARK}{UNSUPPORTED}" in offered.splitlines()
    assert all(t in offered for t in supported)

    # approved unedited (mark kept or deleted), the unsupported sentence is dropped...
    for text in (offered, offered.replace(UNSUPPORTED_MARK, "")):
        dropped = save_approved(content_vault, out.summary_id, text, approver="dr_lee")
        stored = load_summary(content_vault, out.summary_id)["approved_text"]
        assert dropped == 1 and UNSUPPORTED not in stored and UNSUPPORTED_MARK not in stored
        assert all(t in stored for t in supported)

    # ...an edited version is the clinician's own words and is kept, without the mark
    edited = "He was started on warfarin for a clot in the leg (checked with his mother)."
    assert save_approved(content_vault, out.summary_id, offered.replace(UNSUPPORTED, edited), approver="dr_lee") == 0
    stored = load_summary(content_vault, out.summary_id)["approved_text"]
    assert edited in stored and UNSUPPORTED_MARK not in stored
