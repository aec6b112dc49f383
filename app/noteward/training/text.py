"""Sentence splitting and citation matching for building grounded training targets.

Training targets cite the source sentences a bullet rests on (``[S3]``). The sources here
are dialogues and notes; the citations are found by word overlap between a target sentence
and each source sentence, which is what the project's aligner rewards at inference time.
"""

from __future__ import annotations

import re

_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_STOP = frozenset(
    """a an the and or but if of to in on at for with without by from as is are was were be been
    being am do does did have has had having i you he she it we they me him her us them my your
    his its our their this that these those there here what which who whom whose when where why
    how not no yes so than then too very can could will would shall should may might must just
    about into over under again further once all any both each few more most other some such only
    own same s t don now okay ok um uh yeah well oh right mm hmm like also get got go going know
    think doctor patient guest_family guest_clinician""".split()
)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences: one per non-empty line, lines split at sentence ends.

    Lines that are only a markdown heading (``# Medications``) are dropped; list markers
    (``- ``) are removed. Kept simple and deterministic so training and evaluation agree.
    """
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"^(?:[-*\u2022]|\d+[.)])\s+", "", line)
        for part in _SENT_END.split(line):
            part = " ".join(part.split())
            if part:
                out.append(part)
    return out


def split_dialogue(dialogue: str) -> list[str]:
    """Dialogue turns ("Doctor: ...") split into sentences, each keeping its speaker label."""
    out: list[str] = []
    speaker = ""
    for raw in dialogue.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"^\[?([A-Za-z_ ]{2,20})\]?\s*:\s*(.*)$", line)
        if m and m.group(1).strip().lower().replace(" ", "_") in {
            "doctor", "patient", "guest_family", "guest_clinician", "nurse", "family",
        }:
            speaker = m.group(1).strip().capitalize().replace("_", " ")
            line = m.group(2)
        else:
            m2 = re.match(r"^\[(doctor|patient|patient_guest|doctor_guest)\]\s*(.*)$", line, re.I)
            if m2:
                speaker = m2.group(1).split("_")[0].capitalize()
                line = m2.group(2)
        for part in _SENT_END.split(line):
            part = " ".join(part.split())
            if part:
                out.append(f"{speaker}: {part}" if speaker else part)
    return out


def content_words(text: str) -> set[str]:
    """Lower-cased content words (stop words dropped); numbers are kept."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and (len(w) > 2 or w.isdigit())}


def best_sources(target: str, sources: list[set[str]], k: int = 2, min_overlap: int = 1) -> list[int]:
    """0-based indices of up to ``k`` source sentences sharing the most content words.

    A second source is kept only if it adds words the first did not cover, so a bullet
    cites one sentence unless it really draws on two.
    """
    tw = content_words(target)
    if not tw:
        return []
    scored = sorted(
        ((len(tw & s), -i, i) for i, s in enumerate(sources) if len(tw & s) >= min_overlap),
        reverse=True,
    )
    if not scored:
        return []
    first = scored[0][2]
    picked = [first]
    covered = tw & sources[first]
    for _, _, i in scored[1:]:
        if len(picked) >= k:
            break
        gain = (tw & sources[i]) - covered
        if len(gain) >= 2:
            picked.append(i)
            covered |= gain
    return sorted(picked)
