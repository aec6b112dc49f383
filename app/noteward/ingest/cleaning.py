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
    text, repaired = decode_bytes(raw)
    fixed = repair_mojibake(text)
    return normalize(fixed), repaired or fixed != text


def decode_bytes(raw: bytes) -> tuple[str, bool]:
    """Bytes as UTF-8 (BOM removed), else as Windows-1252; (text, True) when not UTF-8.

    No normalisation: JSON and CSV are decoded with this before they are parsed.
    """
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), True


# Every byte but the control characters looks_binary counts (tab, LF, FF and CR are text).
_NOT_CONTROL = bytes(b for b in range(256) if b >= 32 or b in (9, 10, 12, 13))


def looks_binary(raw: bytes) -> bool:
    """True for content that is not text in any encoding Noteward reads (images, PDFs,
    archives, UTF-16): judged on the first 8 KB, it holds a NUL byte and is not UTF-8, or
    more than one in ten of its bytes are control characters other than tab, newline,
    form feed and carriage return. A stray NUL in UTF-8 text does not make it binary
    (``normalize`` drops it)."""
    head = raw[:8192]
    if not head:
        return False
    controls = len(head.translate(None, _NOT_CONTROL))
    if controls * 10 > len(head):
        return True
    return b"\x00" in head and not _utf8_prefix(head)


def _utf8_prefix(head: bytes) -> bool:
    """``head`` is UTF-8, but for a multi-byte character cut off at its end."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data" and exc.end == len(head)
    return True


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
