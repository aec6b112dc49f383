"""The "reference-v2" task prompts: the model writes a note section in its own words.

Grounded-v1 (``noteward.llm.prompts``) shows numbered sentences and asks for cited bullets,
which taught the fine-tuned model to copy. Reference-v2 shows the raw source (a visit
conversation, a patient's notes or message) and names one part of the note to write; the
target is the reference text itself, with no citations: grounding is checked after
generation (``noteward.llm.grounding``). Training (``noteward.training.data``) and the
evaluation (``noteward.llm.evaluation``) build their prompts here, so both agree.

The source comes before the task, so the four ACI-Bench divisions of one visit share a
prompt prefix and llama.cpp evaluates the long conversation once. The wording is data:
``resources/prompts/reference_v2.json``.

ACI-Bench notes are divided as the ACI-Bench paper's section tagger divides them
(``divide_aci_note``): a division starts at the first header of its kind (chief complaint,
history, review of systems, social/past history -> subjective; physical exam, "vitals
reviewed" -> objective exam; results, findings -> objective results; assessment, plan,
impression -> assessment and plan) and runs to the start of the next division found.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from noteward.settings import resources_dir

RECIPE = "reference-v2"
ACI_DIVISIONS = ("subjective", "objective_exam", "objective_results", "assessment_and_plan")

# Header spellings per division (the ACI-Bench tagger's lists). A spelling ending in ':'
# also matches without the colon when it is alone on its line; one without ':' matches
# any line that starts with it. Case is ignored except for IMPRESSION (see _CASED).
_HEADERS: dict[str, tuple[str, ...]] = {
    "subjective": (
        "cc :", "chief complaint :", "reason for visit :", "CHIEF COMPLAINT", "history :",
        "history of present illness :", "history of present illness", "hpi :", "hpi", "hpi notes :",
        "interval history :", "interval hx :", "subjective :", "ros :", "review of system :",
        "review of systems :", "SOCIAL HISTORY", "PAST HISTORY",
    ),
    "objective_exam": (
        "physical exam :", "physical examination :", "pe :", "physical findings :", "examination :",
        "exam :", "PHYSICAL EXAMINATION", "PHYSICAL EXAM", "VITALS REVIEWED",
    ),
    "objective_results": ("results :", "findings :", "RESULTS"),
    "assessment_and_plan": (
        "assessment :", "a:", "plan :", "plan of care :", "p:", "medical decision-making plan :",
        "summary plan", "ap :", "a / p :", "assessment and plan :", "assessment & plan :",
        "disposition / plan :", "ASSESSMENT AND PLAN",
    ),
}
_CASED = (("assessment_and_plan", re.compile(r"\s*IMPRESSION")),)


def _pattern(spellings: tuple[str, ...]) -> re.Pattern[str]:
    def body(s: str) -> str:
        return re.escape(s).replace(r"\ ", r"\s*").replace(" ", r"\s*")

    with_text = "|".join(body(s) for s in spellings)
    alone = "|".join(body(s[:-1].rstrip()) for s in spellings if s.endswith(":"))
    pat = rf"\s*(?:{with_text})"
    if alone:
        pat = rf"(?:{pat}|\s*(?:{alone})\s*$)"
    return re.compile(pat, re.IGNORECASE)


_PATTERNS = tuple((div, _pattern(sp)) for div, sp in _HEADERS.items())


def _division_of_line(line: str) -> str | None:
    for div, pat in _PATTERNS:
        if pat.match(line):
            return div
    for div, pat in _CASED:
        if pat.match(line):
            return div
    return None


def divide_aci_note(note: str) -> dict[str, str]:
    """An ACI-Bench note split into its divisions (only those it has), in note order.

    Text before the first header counts as subjective, as in the ACI-Bench tagger.
    """
    note = note.replace("\r\n", "\n")
    starts: dict[str, int] = {}
    offset = 0
    for n, line in enumerate(note.split("\n")):
        div = _division_of_line(line)
        if n == 0 and div is None:
            div = "subjective"
        if div is not None and div not in starts:
            starts[div] = offset
        offset += len(line) + 1
    ordered = sorted(starts.items(), key=lambda kv: kv[1])
    out: dict[str, str] = {}
    for i, (div, start) in enumerate(ordered):
        end = ordered[i + 1][1] if i + 1 < len(ordered) else len(note)
        text = note[start:end].strip()
        if text:
            out[div] = text
    return out


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    path = resources_dir() / "prompts" / "reference_v2.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def mts_section_name(header: str) -> str:
    """'GENHX' -> 'history of present illness' (unknown headers: lower-cased as given)."""
    return str(_spec()["mts_sections"].get(header.strip().upper(), header.strip().lower()))


def division_name(division: str) -> str:
    """'objective_exam' -> 'physical examination'."""
    return str(_spec()["aci_divisions"][division])


def _clean(source: str) -> str:
    lines = [" ".join(line.split()) for line in source.replace("\r\n", "\n").split("\n")]
    return "\n".join(line for line in lines if line)


def user_prompt(kind: str, source: str, task: str, **fields: str) -> str:
    """The user turn: the source under its label (``kind``), then the task sentence.

    ``kind`` is 'conversation', 'notes' or 'question'; ``task`` a key of the spec's tasks
    ('mts_section', 'aci_division', ...) whose ``{placeholders}`` come from ``fields``.
    """
    spec = _spec()
    return spec[kind].format(source=_clean(source)) + spec["tasks"][task].format(**fields)


def mts_prompt(dialogue: str, header: str) -> str:
    """User turn for one MTS-Dialog item: the conversation, then the section to write."""
    return user_prompt("conversation", dialogue, "mts_section", section=mts_section_name(header))


def aci_prompt(dialogue: str, division: str) -> str:
    """User turn for one ACI-Bench division: the visit conversation, then the division."""
    return user_prompt("conversation", dialogue, "aci_division", division=division_name(division))


def question_prompt(message: str) -> str:
    """User turn for MeQSum: the patient's message, then 'summarize it as one question'."""
    return user_prompt("question", message, "question_summary")
