"""Text-overlap metrics of the summary evaluation, kept free of the model runtime.

ROUGE is rouge-score 0.1.2 with its Porter stemmer on (the scorer the MEDIQA-Chat and
ACI-Bench papers report). ROUGE-Lsum treats each line as a sentence, so both texts are put
one sentence per line first (``one_sentence_per_line``); without that a paragraph scores
as one long sentence and Lsum falls back to plain ROUGE-L. The copied-4-gram share says how
much of an output is lifted from its input (1.0: a verbatim copy).

This module imports only the standard library at load time, so the GPU training job
(``noteward.training.gpu_job``), which runs where llama.cpp is not installed, scores its
development split with the same code.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[•-])")
_TOKEN = re.compile(r"[a-z0-9]+")


def one_sentence_per_line(text: str) -> str:
    """``text`` with every sentence on its own line (line breaks kept, blank lines dropped)."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        for part in _SENT_END.split(line.strip()):
            part = " ".join(part.split())
            if part:
                out.append(part)
    return "\n".join(out)


@lru_cache(maxsize=1)
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(reference: str, output: str) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F1 of ``output`` against ``reference`` (Lsum over sentence lines)."""
    scores = _scorer().score(reference, output)
    lsum = _scorer().score(one_sentence_per_line(reference), one_sentence_per_line(output))["rougeLsum"]
    return {
        "rouge1": scores["rouge1"].fmeasure,
        "rouge2": scores["rouge2"].fmeasure,
        "rougeL": scores["rougeL"].fmeasure,
        "rougeLsum": lsum.fmeasure,
    }


def ngrams(text: str, n: int = 4) -> list[tuple[str, ...]]:
    """Lower-cased word ``n``-grams of ``text`` (letters and digits only), in order."""
    words = _TOKEN.findall(text.lower())
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def copied_ngram_share(output: str, source: str, n: int = 4) -> float | None:
    """Share of ``output``'s ``n``-grams that also occur in ``source`` (None: output too short)."""
    grams = ngrams(output, n)
    if not grams:
        return None
    seen = set(ngrams(source, n))
    return sum(1 for g in grams if g in seen) / len(grams)


def mean(values: list[float]) -> float | None:
    """Arithmetic mean rounded to 4 places (None for no values)."""
    return round(sum(values) / len(values), 4) if values else None
