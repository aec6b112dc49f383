"""Decoding constraint: the model may only write numbers that appear in its prompt's sources.

A small model that has learned the shape of a clinical note will happily write "lisinopril
20 mg" when the notes say 10 mg. The aligner flags such a sentence afterwards; this
constraint stops it being written at all. At every step the logits of tokens that would
start, extend or end a number not found in the source sentences are set to -inf, so the
number can only be copied (digit by digit if need be) from the sources. Numbers are found
with the aligner's own pattern (``grounding._NUMBER_RE``), so what it would call a
hallucinated number is exactly what this forbids. Words ("three months") are not affected.

Cost: one vectorised mask per token outside numbers; inside a number, a check of the
vocabulary's digit-bearing tokens (about 1-2 % of it). ``noteward bench summarize``
measures generation speed with it in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from noteward.llm.grounding import _NUMBER_RE, normalize_word

_DIGIT = re.compile(r"\d")
_CTX = 24  # characters of generated text looked back at (longer than any number)


class NumberVocab:
    """What the constraint needs to know of a model's vocabulary, computed once per model.

    ``token_texts``: the decoded text of every token id (index = id).
    """

    def __init__(self, token_texts: list[str]) -> None:
        import numpy as np

        self.digit_ids = np.array([i for i, t in enumerate(token_texts) if _DIGIT.search(t)], dtype=np.int64)
        self.digit_texts = [token_texts[i] for i in self.digit_ids]
        self.no_digit = np.ones(len(token_texts), dtype=bool)
        self.no_digit[self.digit_ids] = False
        self.separators = {sep: [i for i, t in enumerate(token_texts) if t == sep] for sep in ".,"}


class SourceNumbersOnly:
    """A llama-cpp-python logits processor allowing only the numbers in ``sources``.

    ``prompt_len``: how many ids of ``input_ids`` are the prompt (the rest is what the model
    wrote); ``detok`` turns token ids into text.
    """

    def __init__(self, sources: Iterable[str], vocab: NumberVocab, prompt_len: int, detok: Any) -> None:
        raw = {m.group(0) for s in sources for m in _NUMBER_RE.finditer(s)}
        self.complete = {normalize_word(x) for x in raw} | raw
        self.prefixes = {x[:i] for x in raw for i in range(1, len(x) + 1)}
        self.detok = detok
        self.text = ""
        self.seen = prompt_len
        self.digit_ids = vocab.digit_ids
        self.digit_texts = vocab.digit_texts
        self.no_digit = vocab.no_digit
        self.separators = vocab.separators
        # tokens that may follow plain text (no number in progress), by the last character
        self._ban_after: dict[str, Any] = {}

    # -- checks on text

    def _ok(self, combined: str, start: int) -> bool:
        """Whether every number touching ``combined[start:]`` is allowed (or a prefix of one)."""
        for m in _NUMBER_RE.finditer(combined):
            if m.end() < start:
                continue
            num = m.group(0)
            end = m.end()
            if end == len(combined) or (end == len(combined) - 1 and combined[-1] in ".,"):
                cont = num + combined[end:]  # still open: "2" or "2." may go on to "2.5"
                if cont not in self.prefixes and num not in self.complete:
                    return False
            elif num not in self.complete and normalize_word(num) not in self.complete:
                return False
        return True

    def _open_number(self) -> str:
        """The number the generated text ends in, if it is still open ("" when none)."""
        tail = self.text[-_CTX:]
        found = list(_NUMBER_RE.finditer(tail))
        if not found:
            return ""
        m = found[-1]
        rest = tail[m.end() :]
        if rest == "" or (rest in (".", ",")):
            return m.group(0) + rest
        return ""

    # -- the processor

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        n = len(input_ids)
        if n > self.seen:
            self.text += self.detok(list(input_ids[self.seen : n]))
            self.seen = n
        ctx = self.text[-_CTX:]
        open_num = self._open_number()
        if open_num:
            start = len(ctx) - len(open_num) + 1  # the open number is re-checked with each candidate
            ban = [tid for tid, t in zip(self.digit_ids, self.digit_texts, strict=True) if not self._ok(ctx + t, start)]
            base = open_num.rstrip(".,")
            if base not in self.complete and normalize_word(base) not in self.complete:
                # an unfinished number that is not a source number: it must go on
                keep = [(i, scores[i]) for sep in ".," if open_num + sep in self.prefixes for i in self.separators[sep]]
                scores[self.no_digit] = -np.inf
                for i, v in keep:
                    scores[i] = v
            if ban:
                scores[np.array(ban, dtype=np.int64)] = -np.inf
            return scores
        last = ctx[-1:] if ctx else " "
        key = "a" if last.isalpha() else "."
        mask = self._ban_after.get(key)
        if mask is None:
            probe = "a" if key == "a" else " "
            mask = np.array(
                [tid for tid, t in zip(self.digit_ids, self.digit_texts, strict=True) if not self._ok(probe + t, 1)],
                dtype=np.int64,
            )
            self._ban_after[key] = mask
        if len(mask):
            scores[mask] = -np.inf
        return scores


def number_vocab(llm: Any) -> NumberVocab:
    """The ``NumberVocab`` of a llama-cpp-python model (built on first use, kept on the instance)."""
    vocab = getattr(llm, "_noteward_number_vocab", None)
    if vocab is None:
        texts = [llm.detokenize([i]).decode("utf-8", errors="replace") for i in range(llm.n_vocab())]
        vocab = NumberVocab(texts)
        llm._noteward_number_vocab = vocab
    return vocab
