"""The grounded summary prompt, version "grounded-v1" (see notes/PROMPT_FORMAT.md).

The model sees numbered source sentences and writes bullets under fixed headings; each
bullet ends with the ids of the sentences it rests on. The citations are only a hint: the
aligner in ``noteward.llm.grounding`` checks every bullet against the notes itself.

The same text is used for inference (here) and for fine-tuning (``noteward.training``),
so a change to the wording must bump ``PROMPT_VERSION``. The instruction text itself is
data, kept in ``resources/prompts/grounded_v1.txt``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from noteward.core.models import SECTIONS as _CORE_SECTIONS
from noteward.settings import resources_dir as settings_resources_dir

PROMPT_VERSION = "grounded-v1"
SECTIONS: tuple[str, ...] = tuple(_CORE_SECTIONS)

# Appended after the user prompt when a base (non-chat) model is used as plain text.
BASE_MODEL_SUFFIX = "\nSummary:\n"

_RESOURCE = "prompts/grounded_v1.txt"


def resources_dir() -> Path:
    """The resources/ folder (see noteward.settings.resources_dir)."""
    return settings_resources_dir()


@lru_cache(maxsize=1)
def instruction_text() -> str:
    """The fixed instruction that precedes the numbered sentences (ends with 'Sentences:\\n')."""
    text = (resources_dir() / _RESOURCE).read_text(encoding="utf-8")
    return text.replace("\r\n", "\n")


def _clean_sentence(s: str) -> str:
    # One source sentence per line: newlines inside it would break the numbering.
    return " ".join(s.split())


def build_user_prompt(sentences: list[str]) -> str:
    """The user turn: instruction plus ``[S1] ...`` lines, ids 1-based in list order."""
    lines = [f"[S{i}] {_clean_sentence(s)}" for i, s in enumerate(sentences, start=1)]
    return instruction_text() + "\n".join(lines) + "\n"


def build_base_prompt(sentences: list[str]) -> str:
    """The plain-text prompt for a base model: the user turn followed by 'Summary:'."""
    return build_user_prompt(sentences) + BASE_MODEL_SUFFIX


def format_target(bullets: list[tuple[str, str, list[int]]]) -> str:
    """The assistant turn for (section, text, 1-based ids) bullets, sections in fixed order.

    Bullets are grouped under their heading in ``SECTIONS`` order; within a heading they
    keep their given order. An unknown section is written under "Other".
    """
    by_section: dict[str, list[tuple[str, list[int]]]] = {s: [] for s in SECTIONS}
    for section, text, ids in bullets:
        key = section if section in by_section else "Other"
        by_section[key].append((text, ids))
    out: list[str] = []
    for section in SECTIONS:
        items = by_section[section]
        if not items:
            continue
        out.append(f"{section}:")
        for text, ids in items:
            cites = "".join(f"[S{i}]" for i in ids)
            body = _clean_sentence(text)
            out.append(f"- {body} {cites}" if cites else f"- {body}")
    return "\n".join(out) + ("\n" if out else "")


_HEADING_RE = re.compile(r"^\s*(?:#+\s*)?\**\s*([A-Za-z][A-Za-z ]*?)\s*\**\s*:\s*\**\s*$")
_BULLET_RE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.*\S)\s*$")
# "[S3]", and the malformed ones a small model writes: "[S30.5]", "[S3, S4]", "[S2-S5]".
_CITE_RE = re.compile(r"\[\s*S\s*\d+(?:\s*[.,;\-\u2013]\s*S?\s*\d+)*\s*\]", re.IGNORECASE)
# The sentence ids inside one citation: the first number, then any number written "S<n>".
_CITE_ID_RE = re.compile(r"^\[\s*S\s*(\d+)|S\s*(\d+)", re.IGNORECASE)
# A line that starts with a bare sentence id ("S3. text" or "[S3] text"): a copied source line.
_LEAD_ID_RE = re.compile(r"^\s*(?:\[\s*S(\d+)\s*\]|S(\d+)[.:)])\s*", re.IGNORECASE)
_TRAILING_CITES_RE = re.compile(
    r"(?:\s*" + _CITE_RE.pattern + r"(?:\s*,)?)+\s*[.;]?\s*$", re.IGNORECASE
)
_SECTION_ALIASES = {s.lower(): s for s in SECTIONS} | {
    "problem": "Problems",
    "problem list": "Problems",
    "conditions": "Problems",
    "diagnoses": "Problems",
    "medication": "Medications",
    "meds": "Medications",
    "allergy": "Allergies",
    "findings": "Recent findings",
    "recent finding": "Recent findings",
    "results": "Recent findings",
    "plans": "Plan",
    "assessment and plan": "Plan",
}


def section_for_heading(text: str) -> str | None:
    """The canonical section for a heading line like 'Medications:' (None if not one)."""
    m = _HEADING_RE.match(text)
    if not m:
        return None
    return _SECTION_ALIASES.get(m.group(1).strip().lower())


def split_citations(bullet: str) -> tuple[str, list[int]]:
    """Split 'text [S2][S7]' into ('text', [2, 7]); citations inside the text count too."""
    ids = [
        int(a or b)
        for cite in _CITE_RE.finditer(bullet)
        for a, b in _CITE_ID_RE.findall(cite.group(0))
    ]
    text = _TRAILING_CITES_RE.sub("", bullet)
    text = _CITE_RE.sub("", text)
    return " ".join(text.split()).strip(), list(dict.fromkeys(ids))


def parse_output(text: str) -> list[tuple[str, str, list[int]]]:
    """Parse model output into (section, text, 1-based ids) bullets.

    Tolerant: unknown headings are ignored (their bullets go to the current section, or
    "Other" before any heading), bullets may use '-', '*', '•' or '1.', and a bullet line
    without a marker after a heading is accepted. Streaming-safe: only complete lines
    (ending in a newline) are parsed, so a half-written last line is never returned; call
    with the final text plus "\\n" once generation ends.
    """
    complete = text[: text.rfind("\n") + 1] if "\n" in text else ""
    section = "Other"
    out: list[tuple[str, str, list[int]]] = []
    for line in complete.split("\n"):
        if not line.strip():
            continue
        heading = section_for_heading(line)
        if heading is not None:
            section = heading
            continue
        lead = _LEAD_ID_RE.match(line)
        if lead:
            clean = line[lead.end() :].strip()
            if clean:
                out.append(
                    (section, " ".join(clean.split()), [int(lead.group(1) or lead.group(2))])
                )
            continue
        m = _BULLET_RE.match(line)
        body = m.group(1) if m else line.strip()
        if not m and not _CITE_RE.search(body):
            # Free prose without a bullet marker or a citation: not part of the format.
            continue
        clean, ids = split_citations(body)
        if clean:
            out.append((section, clean, ids))
    return out
