"""Look for known patient data in files: the check that nothing from a vault is ever
written unencrypted (temp files, caches, logs, indexes).

The needles come straight from the source data (patient names from the FHIR Patient
resources, sentences from the decoded DocumentReference notes), so they do not depend on
how Noteward stores anything. Files are searched as bytes, for the UTF-8 and UTF-16 forms
of every needle; a scan is shown to work by finding a plaintext file written on purpose.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MIN_SENTENCE = 30  # shorter sentences ("No complaints.") are not specific to anyone
MAX_FILE_BYTES = 512 * 1024 * 1024
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class Needles:
    names: set[str] = field(default_factory=set)
    sentences: set[str] = field(default_factory=set)

    def all(self) -> Iterator[tuple[str, str]]:
        for n in sorted(self.names):
            yield "name", n
        for s in sorted(self.sentences):
            yield "note sentence", s


@dataclass(frozen=True)
class Hit:
    path: str
    kind: str
    needle: str = field(repr=False)  # never echo patient data into test output
    encoding: str = "utf-8"


def synthea_phi(folder: Path) -> Needles:
    """Names (each given and family name, and the full name) from Patient.*.ndjson, and
    every note sentence of at least MIN_SENTENCE characters from DocumentReference.*.ndjson."""
    needles = Needles()
    for f in sorted(folder.glob("Patient.*.ndjson")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            for name in json.loads(line).get("name", []):
                parts = [*name.get("given", []), name.get("family", "")]
                needles.names.update(p for p in parts if len(p) >= 4)
                if name.get("given") and name.get("family"):
                    needles.names.add(f"{name['given'][0]} {name['family']}")
    for f in sorted(folder.glob("DocumentReference.*.ndjson")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            for content in json.loads(line).get("content", []):
                att = content.get("attachment", {})
                if not att.get("data") or not str(att.get("contentType", "")).startswith("text/plain"):
                    continue
                text = base64.b64decode(att["data"]).decode("utf-8", errors="replace")
                for s in _SENTENCE_SPLIT.split(text):
                    s = s.strip()
                    if len(s) >= MIN_SENTENCE:
                        needles.sentences.add(s)
    return needles


def files_under(root: Path, *, changed_since: float | None = None,
                exclude: Iterable[Path] = ()) -> list[Path]:
    """Regular files under ``root`` (symlinks not followed); with ``changed_since``, only
    those created or modified since then (ctime too: a copy may keep an old mtime)."""
    excluded = [e.resolve() for e in exclude]
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if (base / d).resolve() not in excluded]
        for name in filenames:
            p = base / name
            try:
                st = p.lstat()
            except OSError:
                continue  # vanished while we walked
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
                continue
            if changed_since is not None and max(st.st_mtime, st.st_ctime) < changed_since:
                continue
            if p.resolve() in excluded:
                continue
            out.append(p)
    return out


def _text_runs(data: bytes, min_len: int) -> tuple[bytes, bytes]:
    """Printable ASCII runs (as UTF-8/Latin-1 text would hold them) and UTF-16 ASCII runs,
    each joined by NUL so a needle cannot match across two runs. Encrypted bytes hold
    few such runs, which keeps scanning a large vault fast. One UTF-16 pattern serves
    both byte orders: big-endian text is little-endian text shifted by one byte."""
    ascii_runs = re.findall(rb"[\t\n\r\x20-\x7e]{%d,}" % min_len, data)
    utf16_runs = re.findall(rb"(?:[\t\n\r\x20-\x7e]\x00){%d,}[\t\n\r\x20-\x7e]?" % (min_len - 1), data)
    return b"\x00".join(ascii_runs), b"\x00\x00".join(utf16_runs)


def scan_bytes(data: bytes, needles: Needles, label: str) -> list[Hit]:
    """Every needle found in ``data`` (UTF-8, UTF-16-LE or UTF-16-BE)."""
    items = list(needles.all())
    if not items:
        return []
    ascii_items = [(k, n) for k, n in items if n.isascii()]
    other_items = [(k, n) for k, n in items if not n.isascii()]
    hits = []
    if ascii_items:
        runs8, runs16 = _text_runs(data, min(len(n) for _, n in ascii_items))
        for kind, needle in ascii_items:
            if needle.encode("ascii") in runs8:
                hits.append(Hit(label, kind, needle, "utf-8"))
            elif needle.encode("utf-16-le")[:-1] in runs16:  # either byte order
                hits.append(Hit(label, kind, needle, "utf-16"))
    for kind, needle in other_items:  # rare: search the raw bytes
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            if needle.encode(enc) in data:
                hits.append(Hit(label, kind, needle, enc))
                break
    return hits


def scan_files(paths: Iterable[Path], needles: Needles) -> list[Hit]:
    hits: list[Hit] = []
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError:
            continue  # removed or unreadable between listing and reading
        hits.extend(scan_bytes(data, needles, str(p)))
    return hits
