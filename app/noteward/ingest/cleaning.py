"""Text cleaning for imported notes: decoding, encoding repair, normalisation.

The cleaned text is what the vault stores and what every offset points into.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac[\u0080-\u00bf\u2122\u0153\u02dc\u201c\u201d]")


def decode_text(raw: bytes) -> tuple[str, bool]:
    """Decode bytes as UTF-8 (BOM removed); fall back to Windows-1252.

    Returns (text, repaired): repaired is True when the bytes were not valid UTF-8 or
    the text held UTF-8 read as Windows-1252 ("mojibake") and was fixed.
    """
    try:
        text = raw.decode("utf-8-sig")
        repaired = False
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
        repaired = True
    fixed = repair_mojibake(text)
    return normalize(fixed), repaired or fixed != text


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as Windows-1252 ("Ã©" -> "é"), when that is safe."""
    if not _MOJIBAKE.search(text):
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def normalize(text: str) -> str:
    """Unify line endings and drop control characters other than tab and newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def is_empty(text: str) -> bool:
    return not text.strip()
