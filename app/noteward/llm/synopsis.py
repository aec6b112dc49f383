"""The model-written top line: who the patient is and why they were seen last.

The composed summary's top line is built from facts (``composition._top_line``). A model
trained with the reference-v2 recipe learned one more task from Synthea's structured truth:
given a patient's newest 1-3 notes, write "who is this patient and why were they seen on
<date>?" in one line (``training.reference_data.synthea_targets``). ``ModelSynopsis`` asks
the loaded model exactly that prompt (``synopsis_prompt``, the training recipe's own), checks
the line with the grounding checker against those notes and the patient's recorded sex
(``check_synopsis``), and gives it back only when the checker supports it; otherwise the
fact line stays.

When it runs: after the composed sentences are on screen and after the model's own pass,
so the first sentence is never delayed. The fact line goes out first; a supported model
line takes its place in the finished summary (the app's pane rebuilds from the finished
summary when it differs from what streamed). Its cost is recorded as the summary timing
``synopsis_ms``.

Which models: only those whose manifest entry says ``"recipe": "reference-v2"``
(``writes_synopsis``). The current default was trained with grounded-v1, which never saw
this task; a base model never did either. For them the line would be an untrained guess,
so no writer is set and the fact line stays.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from noteward.core.models import SummarySentence
from noteward.llm import reference
from noteward.llm.composition import Composition, age_on, without_semantic_tags
from noteward.llm.grounding import Alignment, SourceIndex
from noteward.llm.selection import Selection

if TYPE_CHECKING:
    from noteward.llm.lexicon import Vocabulary
    from noteward.llm.manifest import Manifest

log = logging.getLogger(__name__)

MAX_NOTES = 3  # the training windows hold 1-3 notes
MAX_NEW_TOKENS = 48  # one line


def writes_synopsis(model_id: str | None, manifest: Manifest | None = None) -> bool:
    """True when ``model_id`` (None: the default) was trained with the reference-v2 recipe,
    the only one whose training set holds the synopsis task (its manifest entry's
    ``recipe``; entries without one were trained with grounded-v1 or not at all)."""
    from noteward.llm.manifest import load_manifest

    entry = (manifest or load_manifest()).get(model_id)
    return entry.raw.get("recipe") == reference.RECIPE


def notes_source(notes: Sequence[tuple[str, str]]) -> str:
    """The notes as the training recipe shows them: "Note of <date>:" then the text."""
    return "\n\n".join(f"Note of {d}:\n{t.strip()}" for d, t in notes)


def synopsis_prompt(notes: Sequence[tuple[str, str]]) -> str:
    """The reference-v2 user turn for (date, text) notes, oldest first, newest last."""
    return reference.user_prompt("notes", notes_source(notes), "synopsis", date=notes[-1][0])


def synopsis_notes(
    sel: Selection, visit: str | None, n: int = MAX_NOTES
) -> list[tuple[str, str, str]]:
    """The newest ``n`` dated notes on or before ``visit`` (the top line's visit date), as
    (date, note id, text), oldest first."""
    dated = sorted((d, nid) for nid, d in sel.note_dates.items() if d and (not visit or d <= visit))
    return [(d, nid, sel.index.texts[nid]) for d, nid in dated[-n:]]


_AGE_RE = re.compile(r"\b(\d{1,3})[- ]?(?:year|yr)s?[- ]old\b", re.IGNORECASE)
_DATE_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_WHO_RE = re.compile(
    r"\b(?:male|female|man|woman|boy|girl|gentleman|lady|infant|baby|child|he|she)\b", re.IGNORECASE
)


def check_synopsis(
    text: str,
    notes: Sequence[tuple[str, str, str]],
    sex: str | None,
    vocabulary: Vocabulary | None = None,
    *,
    age: int | None = None,
    visit: str | None = None,
) -> Alignment:
    """The checker's verdict on a synopsis line against the notes it was written from
    ((date, note id, text)) and the patient's recorded sex, plus what a top line must get
    right that a copy from an older note gets wrong (the default grounded-v1 model wrote
    "Patient is a 10 year-old ... male ... [2022-03-31]" for an 11-year-old seen in 2022,
    and "Patient: <name>", both supported by the notes): it says who the patient is (an
    age or a sex word), any age it states is ``age`` (at the visit), any date it names is
    ``visit``."""
    index = SourceIndex({nid: t for _d, nid, t in notes}, vocabulary=vocabulary, patient_sex=sex)
    al = index.align(text)
    reasons: list[str] = []
    ages = {int(m.group(1)) for m in _AGE_RE.finditer(text)}
    if not ages and not _WHO_RE.search(text):
        reasons.append("does not say who the patient is (no age, no sex)")
    if age is not None and ages - {age}:
        reasons.append(f"states another age than the patient's at the visit ({age})")
    if visit is not None and set(_DATE_RE.findall(text)) - {visit}:
        reasons.append("names another date than the visit's")
    if reasons:
        al = Alignment(al.sources, min(al.support, 0.25), False, [*al.reasons, *reasons], al.exact)
    return al


@dataclass
class SynopsisAttempt:
    """What the last call did (for tests and benchmarks; holds note text: never logged)."""

    prompt: str
    notes: list[tuple[str, str, str]]
    output: str
    line: str
    alignment: Alignment | None
    prompt_tokens: int
    ms: float


class ModelSynopsis:
    """A ``SummaryService.synopsis_writer``: the loaded model's checked top line, or None.

    ``runtime`` returns the model runtime (the service's, started on first use), so the
    synopsis runs on the same owner thread as the summary's model pass."""

    def __init__(self, runtime: Callable[[], Any], max_new_tokens: int = MAX_NEW_TOKENS) -> None:
        self._runtime = runtime
        self.max_new_tokens = max_new_tokens
        self.last: SynopsisAttempt | None = None

    def __call__(
        self, sel: Selection, comp: Composition, cancel: threading.Event | None = None
    ) -> SummarySentence | None:
        top = next((d for d in comp.drafts if d.section == "Patient"), None)
        if top is None:
            return None  # no patient record (a text file): no top line to replace
        t0 = time.perf_counter()
        rt = self._runtime()
        budget = rt.prompt_budget(self.max_new_tokens)
        notes = synopsis_notes(sel, top.date)
        prompt, tokens = "", 0
        while notes:
            prompt = rt.format_prompt(synopsis_prompt([(d, t) for d, _nid, t in notes]))
            tokens = len(rt.tokenize(prompt))
            if tokens <= budget:
                break
            notes = notes[1:]  # fewer notes, the newest kept (training windows are 1-3)
        if not notes:
            return None
        source = notes_source([(d, t) for d, _nid, t in notes])
        res = rt.submit(
            prompt,
            max_tokens=self.max_new_tokens,
            cancel=cancel,
            stop=("\n",),
            numbers_from=(source,),  # numbers only as the notes write them
        ).result()
        line = next((x.strip(" -*\t") for x in res.text.splitlines() if x.strip(" -*\t")), "")
        who = comp.who
        al = (
            check_synopsis(
                line,
                notes,
                sel.index.patient_sex,
                sel.index.vocabulary,
                age=age_on(who.birth_date, top.date) if who is not None else None,
                visit=top.date,
            )
            if line
            else None
        )
        ms = (time.perf_counter() - t0) * 1000
        self.last = SynopsisAttempt(prompt, notes, res.text, line, al, tokens, ms)
        if al is None or not al.supported:
            log.info(
                "synopsis: the model's line is not supported (%d reasons); the fact line stays",
                len(al.reasons) if al else 0,
            )
            return None
        return SummarySentence(
            without_semantic_tags(" ".join(line.split())),
            "Patient",
            al.sources,
            al.support,
            True,
            date=top.date,
            origin="model",
        )
