"""Section-aware chunking of notes.

A note is split at section headers (rules in resources/ingest/sections.yaml), then each
section into chunks of at most ``max_chars`` characters at paragraph, line or sentence
boundaries. Chunks are (start, end) end-exclusive code-point ranges into ``Note.text``
with the canonical section name, so every search hit and summary source points back into
the note exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from noteward.settings import resources_dir


@dataclass(frozen=True)
class ChunkSpan:
    start: int
    end: int
    section: str | None


@dataclass(frozen=True)
class SectionRules:
    patterns: tuple[tuple[re.Pattern[str], bool], ...]  # (regex, known_only)
    canonical: dict[str, str]
    max_chars: int
    min_chars: int


@lru_cache(maxsize=1)
def load_rules() -> SectionRules:
    data: dict[str, Any] = yaml.safe_load((resources_dir() / "ingest" / "sections.yaml").read_text("utf-8"))
    return SectionRules(
        patterns=tuple(
            (re.compile(p["regex"], re.MULTILINE), bool(p.get("known_only"))) for p in data["patterns"]
        ),
        canonical={k.lower(): v for k, v in data["canonical"].items()},
        max_chars=int(data["chunk"]["max_chars"]),
        min_chars=int(data["chunk"]["min_chars"]),
    )


def canonical_section(header: str, rules: SectionRules | None = None) -> str:
    rules = rules or load_rules()
    key = header.strip().strip(":").strip().lower()
    return rules.canonical.get(key, header.strip().strip(":").strip()[:60])


def find_sections(text: str, rules: SectionRules | None = None) -> list[tuple[int, int, str | None]]:
    """Split ``text`` into (start, end, section) ranges covering it completely."""
    rules = rules or load_rules()
    headers: list[tuple[int, str]] = []
    seen: set[int] = set()
    for pat, known_only in rules.patterns:
        for m in pat.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            if line_start in seen:
                continue
            if known_only and m.group("name").strip().lower() not in rules.canonical:
                continue
            seen.add(line_start)
            headers.append((line_start, canonical_section(m.group("name"), rules)))
    headers.sort()
    bounds: list[tuple[int, int, str | None]] = []
    prev_start, prev_name = 0, None
    for start, name in headers:
        if start > prev_start:
            bounds.append((prev_start, start, prev_name))
        prev_start, prev_name = start, name
    if len(text) > prev_start:
        bounds.append((prev_start, len(text), prev_name))
    return bounds


_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"(?<=[.!?;])\s+"), re.compile(r"\s+"))


def _split(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into pieces of at most ``max_chars``, each cut at the last
    paragraph, line, sentence or word break in the piece's last two thirds (a loop, not
    recursion: one section may be megabytes long)."""
    pieces: list[tuple[int, int]] = []
    while end - start > max_chars:
        cut = start + max_chars
        for brk in _BREAKS:
            found = None
            for m in brk.finditer(text, start + max_chars // 3, start + max_chars):
                found = m.end()
            if found and start < found < end:
                cut = found
                break
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def chunk_note(text: str, rules: SectionRules | None = None) -> list[ChunkSpan]:
    """Chunks of a note: whitespace-trimmed, never empty, each inside one section."""
    rules = rules or load_rules()
    chunks: list[ChunkSpan] = []
    for s_start, s_end, section in find_sections(text, rules):
        for a, b in _split(text, s_start, s_end, rules.max_chars):
            while a < b and text[a].isspace():
                a += 1
            while b > a and text[b - 1].isspace():
                b -= 1
            if b <= a:
                continue
            # A header line alone makes a poor chunk: join it to the next piece.
            if chunks and chunks[-1].section == section and (chunks[-1].end - chunks[-1].start) < rules.min_chars \
                    and b - chunks[-1].start <= rules.max_chars:
                chunks[-1] = ChunkSpan(chunks[-1].start, b, section)
            else:
                chunks.append(ChunkSpan(a, b, section))
    return chunks
