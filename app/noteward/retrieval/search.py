"""Hybrid search over note chunks: BM25 (SQLite FTS5) and dense vectors, fused by RRF.

Both rankings are computed over the same chunks and fused by reciprocal rank fusion
(Cormack et al. 2009): ``score = sum(1 / (RRF_K + rank))`` over the rankings a chunk
appears in, rank counted from 1. RRF needs no score calibration between BM25 and cosine
similarity, which have nothing in common but their order.

User text never reaches FTS5's query syntax: it is cut into words and each word is
quoted, so ``"``, ``AND(``, ``NEAR``, ``*`` or ``:`` in a query are just text. Common
words (resources/retrieval/stopwords.txt) are dropped from the BM25 query: they match
almost every chunk and only slow the ranking down.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from noteward.core.errors import UsageError
from noteward.retrieval.embeddings import Embedder, get_embedder
from noteward.retrieval.index import DenseIndex
from noteward.settings import resources_dir
from noteward.store import chunks, events
from noteward.store.vault import Vault

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")
RRF_K = 60
MIN_DEPTH = 50  # candidates taken from each ranking before fusion
MAX_QUERY_TERMS = 32
# Words in more than this share of all chunks are left out of a BM25 query while a rarer
# word remains: FTS5 gives them an IDF of at most log(4), yet they make up most of the
# work of ranking (every chunk holding one is scored).
COMMON_TERM_SHARE = 0.2
_WORD = re.compile(r"\w+", re.UNICODE)
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"  # private-use code points, never in notes
_encoder_pool: ThreadPoolExecutor | None = None  # one thread that encodes queries
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class SearchHit:
    """One matching chunk. ``start``/``end`` are end-exclusive code-point offsets into the
    note's text; ``text`` is ``note.text[start:end]``. Ranks count from 1; a ranking the
    chunk did not appear in leaves its rank and score as None. ``bm25_score`` is FTS5's
    ``-bm25()`` (higher is better); ``dense_score`` is the cosine similarity; ``score``
    is the fused RRF score (for a single-mode search, that mode's own score)."""

    note_id: str
    chunk_id: int
    start: int
    end: int
    text: str
    section: str | None
    score: float
    patient_id: str
    bm25_rank: int | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    dense_score: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("score", "bm25_score", "dense_score"):
            if out[key] is not None:
                out[key] = round(out[key], 6)
        return out


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """Words left out of BM25 queries (resources/retrieval/stopwords.txt)."""
    path = resources_dir() / "retrieval" / "stopwords.txt"
    words = (line.strip().lower() for line in path.read_text("utf-8").splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def query_terms(text: str) -> list[str]:
    """Words of a user query for FTS5: lower-cased, de-duplicated, stop words dropped
    (unless nothing else is left), at most MAX_QUERY_TERMS."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    kept = [w for w in words if w not in stopwords()] or words
    return kept[:MAX_QUERY_TERMS]


def fts_query(text: str) -> str | None:
    """A safe FTS5 MATCH expression for arbitrary user text (None when it has no words).

    Every word is a quoted string, so FTS5 operators and punctuation in the input are
    inert; words are OR-ed and BM25 ranks chunks that contain more of them higher.
    """
    return match_expression(query_terms(text))


def match_expression(terms: Sequence[str]) -> str | None:
    """Quoted words joined by OR (None for no words)."""
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def rrf_fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists (best first) -> [(id, score)] best first.

    Ties are broken by the best single rank the id reached, then by the order of the
    rankings (BM25 is passed first), then by id, so the result is deterministic.
    """
    scores: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            best[item] = min(best.get(item, (rank, which)), (rank, which))
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], kv[0]))


class HybridSearcher:
    """Search one open vault. Build it once per unlocked vault and reuse it: the dense
    index is built on the first dense search and then kept up to date incrementally.

    Runs on the thread that owns the vault connection.
    """

    def __init__(self, vault: Vault, embedder: Embedder | None = None) -> None:
        self.vault = vault
        self._embedder = embedder
        self._dense: DenseIndex | None = None
        self._chunk_count: tuple[str, int] = ("", 0)
        self._spans: tuple[str, dict[str, chunks.ChunkSpan | None]] = ("", {})
        # Term document counts, to leave terms that are in most chunks out of BM25
        # queries. A TEMP virtual table: it stores nothing, in memory or on disk.
        chunks.ensure_vocabulary(vault)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    def dense_index(self) -> DenseIndex:
        """The in-memory FAISS index, built on first use and refreshed from the vault."""
        if self._dense is None:
            self._dense = DenseIndex(model=self.embedder.model_id).load(self.vault)
        else:
            self._dense.refresh(self.vault)
        return self._dense

    def close(self) -> None:
        """Drop the in-memory index and cached query vectors (call when the vault locks:
        they are derived from its contents)."""
        self._dense = None
        self._spans = ("", {})
        if self._embedder is not None:
            self._embedder.clear_query_cache()

    def unindexed_chunks(self) -> int:
        """Chunks with no vector yet (found by keyword only until `noteward index` runs)."""
        total = chunks.count(self.vault)
        return max(0, total - len(self.dense_index()))

    # -- the two rankings ----------------------------------------------------------------

    def _chunks_total(self) -> int:
        head = self._version()
        if self._chunk_count[0] != head or not head:
            self._chunk_count = (head, chunks.count(self.vault))
        return self._chunk_count[1]

    def _patient_span(self, patient_id: str) -> chunks.ChunkSpan | None:
        """Smallest and largest chunk id of a patient (cached until the vault changes)."""
        head = self._version()
        if self._spans[0] != head or not head:
            self._spans = (head, {})
        spans = self._spans[1]
        if patient_id not in spans:
            spans[patient_id] = chunks.patient_span(self.vault, patient_id)
        return spans[patient_id]

    def _version(self) -> str:
        """A cheap marker that changes whenever chunks may have changed: the audit head
        (every import, erasure and restore appends an event) and the largest chunk id."""
        return f"{events.head(self.vault)}/{chunks.max_id(self.vault)}"

    def bm25_terms(self, query: str) -> list[str]:
        """The query's words that go into the BM25 query: stop words dropped, and words in
        more than COMMON_TERM_SHARE of all chunks dropped while a rarer word remains."""
        terms = query_terms(query)
        if len(terms) < 2:
            return terms
        limit = COMMON_TERM_SHARE * self._chunks_total()
        docs = {t: chunks.document_count(self.vault, t) for t in terms}
        kept = [t for t in terms if docs[t] <= limit]
        return kept or [min(terms, key=lambda t: docs[t])]

    def bm25(self, query: str, patient_id: str | None, depth: int) -> list[tuple[int, float]]:
        """FTS5 BM25 ranking: [(chunk id, -bm25)] best first."""
        match = match_expression(self.bm25_terms(query))
        if match is None:
            return []
        if patient_id is None:
            return chunks.bm25(self.vault, match, depth)
        span = self._patient_span(patient_id)
        if span is None:
            return []
        return chunks.bm25(self.vault, match, depth, (patient_id, span))

    def dense(self, query: str, patient_id: str | None, depth: int,
              vector: Future[np.ndarray] | None = None) -> list[tuple[int, float]]:
        """Dense ranking: [(chunk id, cosine similarity)] best first. ``vector``: the
        query's vector, already being encoded on the encoder thread."""
        if not query.strip():
            return []
        index = self.dense_index()
        if not len(index):
            return []
        qvec = vector.result() if vector is not None else self.embedder.encode_query(query)
        return index.search(qvec, depth, patient_id)

    def _encode_async(self, query: str) -> Future[np.ndarray] | None:
        """Start encoding the query on the encoder thread, so that the model runs while
        FTS5 ranks (torch and SQLite both release the GIL). None for an empty query."""
        if not query.strip():
            return None
        global _encoder_pool
        with _pool_lock:
            if _encoder_pool is None:
                _encoder_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="noteward-query-encoder")
        return _encoder_pool.submit(self.embedder.encode_query, query)

    # -- search --------------------------------------------------------------------------

    def search(self, query: str, patient_id: str | None = None, k: int = 10,
               mode: Mode | str = "hybrid") -> list[SearchHit]:
        """Best ``k`` chunks for ``query``, optionally only one patient's (opaque id).

        ``mode`` is "hybrid" (BM25 and dense fused by RRF), "bm25" or "dense". Any text is
        a valid query; a query with no words returns no hits.
        """
        if mode not in MODES:
            raise UsageError(f"Unknown search mode '{mode}': use one of {', '.join(MODES)}.")
        if k < 1:
            raise UsageError("k must be at least 1.")
        depth = max(MIN_DEPTH, 4 * k) if mode == "hybrid" else k
        vector = self._encode_async(query) if mode == "hybrid" else None
        try:
            lexical = self.bm25(query, patient_id, depth) if mode != "dense" else []
        finally:
            if vector is not None and not vector.done():
                vector.add_done_callback(lambda f: f.exception())  # never leave an error unread
        semantic = self.dense(query, patient_id, depth, vector) if mode != "bm25" else []
        b_rank = {cid: (i, s) for i, (cid, s) in enumerate(lexical, start=1)}
        d_rank = {cid: (i, s) for i, (cid, s) in enumerate(semantic, start=1)}
        if mode == "hybrid":
            fused = rrf_fuse([[c for c, _ in lexical], [c for c, _ in semantic]])
        else:
            fused = list(lexical or semantic)
        rows = chunks.by_ids(self.vault, [cid for cid, _ in fused[: k * 2]])
        hits: list[SearchHit] = []
        for cid, score in fused:
            row = rows.get(cid)
            if row is None:  # erased since the dense index last looked
                continue
            c, pid = row
            b, d = b_rank.get(cid), d_rank.get(cid)
            hits.append(SearchHit(
                note_id=c.note_id, chunk_id=cid, start=c.start, end=c.end, text=c.text, section=c.section,
                score=score, patient_id=pid,
                bm25_rank=b[0] if b else None, bm25_score=b[1] if b else None,
                dense_rank=d[0] if d else None, dense_score=d[1] if d else None,
            ))
            if len(hits) == k:
                break
        return hits

    # -- highlighting --------------------------------------------------------------------

    def highlight(self, hit: SearchHit, query: str) -> list[tuple[int, int]]:
        """Character ranges of the query's matched terms inside ``hit``, as end-exclusive
        offsets into the note's text (add nothing: they are already absolute).

        Uses FTS5's own tokenizer and stemming (``highlight()``), so "diabetic" in a query
        marks "diabetes" in the note exactly when BM25 matched it. A hit found only by
        meaning has no matched terms: the list is empty and the UI marks the whole hit.
        """
        match = fts_query(query)
        if match is None:
            return []
        marked = chunks.highlight(self.vault, hit.chunk_id, match, _MARK_OPEN, _MARK_CLOSE)
        if marked is None:
            return []
        return [(hit.start + a, hit.start + b) for a, b in _marked_ranges(marked, hit.text)]


def _marked_ranges(marked: str, plain: str) -> list[tuple[int, int]]:
    """Ranges between the open/close marks, as offsets into the unmarked text."""
    ranges: list[tuple[int, int]] = []
    out_pos = 0
    start: int | None = None
    for ch in marked:
        if ch == _MARK_OPEN:
            start = out_pos
        elif ch == _MARK_CLOSE:
            if start is not None and out_pos > start:
                ranges.append((start, out_pos))
            start = None
        else:
            out_pos += 1
    if out_pos != len(plain):  # the text held a mark character itself: do not guess
        return []
    return ranges
