"""The model-written top line (issue 11 part 2): the reference-v2 "synopsis" prompt, the
checker's verdict, the line used only when supported and only for a model trained for it.

Real parts throughout: the shared Synthea vault (``content_vault``), the real checker, the
real manifest and the real model. Where a test needs the model to write a chosen line (a
correct one, one with the wrong sex) the real runtime's output is scripted, as in
``test_summary_wiring``: the real model cannot be made to write a chosen line on demand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.llm.conftest import ADDED_DATE
from tests.llm.test_summary_wiring import ScriptedRuntime

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

SMALL = "63ee2253"  # 15 notes (plus the added 2022-09-14 note: hives after amoxicillin), a boy
BASE = "smollm2-135m-instruct-q4_1"


def patient(vault: Any, prefix: str) -> Any:
    return next(p for p in vault.patients() if (p.source_id or "").startswith(prefix))


def composed(vault: Any, prefix: str) -> tuple[Any, Any]:
    from noteward.llm.composition import Who, compose
    from noteward.llm.selection import SourceNote, select
    from noteward.llm.summarizer import patient_vocabulary

    p = patient(vault, prefix)
    notes = [SourceNote(n.id, n.text, n.date) for n in vault.notes(p.id)]
    facts = vault.facts(p.id)
    sel = select(notes, facts, vocabulary=patient_vocabulary(facts), patient_sex=p.sex)
    who = Who(p.birth_date, p.sex, p.deceased_date if p.deceased else None)
    return sel, compose(sel, facts, who=who)


# -- which models write it --------------------------------------------------------------


def test_only_a_reference_v2_model_writes_the_top_line(tmp_path: Path) -> None:
    """The manifest says which recipe trained a model: only reference-v2 learned the
    synopsis task. The shipped default (grounded-v1) and the bases did not."""
    from noteward.llm.manifest import load_manifest, shipped_manifest_path
    from noteward.llm.synopsis import writes_synopsis

    shipped = load_manifest()
    assert not writes_synopsis(None, shipped)  # the current default
    assert not writes_synopsis(BASE, shipped)
    data = json.loads(shipped_manifest_path().read_text(encoding="utf-8"))
    trained = dict(next(m for m in data["models"] if m["id"] == shipped.default))
    trained.update(id="refv2-candidate", recipe="reference-v2")
    overlay = tmp_path / "manifest.json"
    overlay.write_text(json.dumps({"models": [trained]}), encoding="utf-8")
    both = load_manifest(overlay=overlay)
    assert writes_synopsis("refv2-candidate", both)
    assert not writes_synopsis(shipped.default, both)


def test_the_default_model_keeps_the_fact_line() -> None:
    from noteward.llm.summarizer import SummaryService

    assert SummaryService(threads=1).synopsis_writer is None
    assert SummaryService(model_id=BASE, threads=1).synopsis_writer is None


# -- the prompt and the check -----------------------------------------------------------


def test_the_prompt_is_the_training_recipes(content_vault: Any) -> None:
    """The notes are shown as the reference-v2 training shows them (its Synthea synopsis
    targets), the newest 1-3 up to the visit, and the task names the visit's date."""
    from noteward.llm import reference
    from noteward.llm.synopsis import synopsis_notes, synopsis_prompt
    from noteward.training.reference_data import synthea_targets

    sel, comp = composed(content_vault, SMALL)
    notes = synopsis_notes(sel, comp.drafts[0].date)
    assert [d for d, _nid, _t in notes][-1] == ADDED_DATE and len(notes) == 3
    pairs = [(d, t) for d, _nid, t in notes]
    med = SimpleNamespace(
        kind="medication", display="ibuprofen 100 mg oral tablet", start="2000-01-01", end=None
    )
    built = synthea_targets(
        {"notes": pairs, "facts": [med], "birth": "2011-03-23", "sex": "male"}, 2, 3
    )
    assert built is not None
    training_user = reference.user_prompt("notes", built[0], "synopsis", date=ADDED_DATE)
    assert synopsis_prompt(pairs) == training_user
    assert training_user.endswith(f"why were they seen on {ADDED_DATE}?")


@pytest.mark.parametrize(
    ("line", "supported"),
    [
        (f"11-year-old male seen on {ADDED_DATE} for hives after starting amoxicillin.", True),
        ("11-year-old boy seen for an itchy rash and hives.", True),
        (f"11-year-old female seen on {ADDED_DATE} for hives after starting amoxicillin.", False),
        ("Patient is a 10 year-old nonhispanic white male.", False),  # an older note's age
        ("Patient: Denis399 Lincoln623", False),  # says nothing of who or why
        ("11-year-old male seen on 2021-03-31 for a check up.", False),  # not the visit
        (f"11-year-old male with diabetes seen on {ADDED_DATE} for hives.", False),
        (f"11-year-old male seen on {ADDED_DATE} for hives after starting warfarin.", False),
    ],
)
def test_the_check_of_a_synopsis_line(content_vault: Any, line: str, supported: bool) -> None:
    from noteward.llm.composition import age_on
    from noteward.llm.synopsis import check_synopsis, synopsis_notes

    sel, comp = composed(content_vault, SMALL)
    notes = synopsis_notes(sel, ADDED_DATE)
    p = patient(content_vault, SMALL)
    al = check_synopsis(
        line,
        notes,
        p.sex,
        sel.index.vocabulary,
        age=age_on(p.birth_date, ADDED_DATE),
        visit=ADDED_DATE,
    )
    assert al.supported is supported, al.reasons


# -- in the summary: the fact line first, a supported model line in its place ----------


def scripted_summary(vault: Any, runtime: Any, line: str) -> tuple[Any, list[Any], Any]:
    from noteward.llm.summarizer import SummaryService
    from noteward.llm.synopsis import ModelSynopsis

    writer = ModelSynopsis(lambda: ScriptedRuntime(runtime, line + "\n"))
    svc = SummaryService(use_model=False, synopsis_writer=writer)
    streamed: list[Any] = []
    res = svc.summarize_patient(
        vault, patient(vault, SMALL).id, on_sentence=streamed.append, save=False
    )
    return res, streamed, writer


def test_a_supported_model_line_replaces_the_fact_line_once_shown(
    content_vault: Any, smollm_runtime: Any
) -> None:
    line = f"11-year-old male seen on {ADDED_DATE} for hives after starting amoxicillin."
    res, streamed, writer = scripted_summary(content_vault, smollm_runtime, line)
    assert streamed[0].section == "Patient" and streamed[0].origin == "fact"  # out first
    top = res.sentences[0]
    assert (top.section, top.origin, top.text, top.date) == ("Patient", "model", line, ADDED_DATE)
    assert top.supported and top.sources
    assert {s.note_id for s in top.sources} <= {nid for _d, nid, _t in writer.last.notes}
    assert sum(1 for s in res.sentences if s.section == "Patient") == 1
    assert res.timings["synopsis_ms"] > 0


def test_an_unsupported_model_line_leaves_the_fact_line(
    content_vault: Any, smollm_runtime: Any
) -> None:
    line = f"11-year-old female seen on {ADDED_DATE} for hives after starting amoxicillin."
    res, streamed, writer = scripted_summary(content_vault, smollm_runtime, line)
    assert (
        writer.last is not None and writer.last.line == line and not writer.last.alignment.supported
    )
    top = res.sentences[0]
    assert top.origin == "fact" and top.text == streamed[0].text
    assert "11-year-old male" in top.text


def test_the_real_model_asked_for_a_synopsis(content_vault: Any, smollm_runtime: Any) -> None:
    """The real (base) model with the real prompt: whatever it writes is used only when
    the checker supports it, and the prompt it read is the training recipe's."""
    from noteward.llm.synopsis import ModelSynopsis, synopsis_prompt

    sel, comp = composed(content_vault, SMALL)
    writer = ModelSynopsis(lambda: smollm_runtime)
    line = writer(sel, comp)
    last = writer.last
    assert last is not None and 1 <= len(last.notes) <= 3
    assert last.prompt == smollm_runtime.format_prompt(
        synopsis_prompt([(d, t) for d, _n, t in last.notes])
    )
    if line is None:
        assert last.alignment is None or not last.alignment.supported
    else:
        assert line.supported and line.origin == "model" and line.date == ADDED_DATE
        assert not re.search(r"\b(?:female|she|her)\b", line.text, re.I)
