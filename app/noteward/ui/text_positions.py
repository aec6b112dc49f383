"""Map Noteward's character offsets to positions in a Qt text document and back.

Noteward's offsets are end-exclusive code points into ``Note.text``. A QTextDocument
counts UTF-16 code units, folds ``\\r\\n`` into one paragraph break and turns a lone
``\\r`` or U+2028 into one. This module has no Qt in it so it is tested on its own.
"""

from __future__ import annotations

from bisect import bisect_right


class PositionMap:
    """Code-point offsets of one text <-> QTextDocument positions of that text."""

    def __init__(self, text: str) -> None:
        self.text = text
        positions = [0] * (len(text) + 1)
        pos = 0
        for i, ch in enumerate(text):
            positions[i] = pos
            if ch == "\r" and i + 1 < len(text) and text[i + 1] == "\n":
                continue  # "\r\n" is a single paragraph break in the document
            pos += 2 if ord(ch) > 0xFFFF else 1
        positions[len(text)] = pos
        self._positions = positions

    def to_doc(self, offset: int) -> int:
        """Document position of code-point ``offset`` (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        return self._positions[offset]

    def to_offset(self, doc_pos: int) -> int:
        """Smallest code-point offset whose document position is ``doc_pos`` or after."""
        i = bisect_right(self._positions, doc_pos) - 1
        i = max(0, min(i, len(self.text)))
        # Step over the "\r" of a "\r\n" pair, which shares its position with the "\n".
        while i > 0 and self._positions[i - 1] == self._positions[i]:
            i -= 1
        return i

    @property
    def doc_length(self) -> int:
        return self._positions[-1]
