"""Hybrid search on a real vault: keyword, meaning, patient scope, fusion, hostile queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from noteward.core.errors import UsageError
from noteward.retrieval.index import index_vault
from noteward.retrieval.search import RRF_K, HybridSearcher, fts_query, rrf_fuse
from tests.retrieval.conftest import EXTRA_NOTE, import_notes, patient_id, write_notes

MODES = ("bm25", "dense", "hybrid")


@pytest.fixture(scope="module")
def searcher(indexed_vault: Any, embedder: Any) -> HybridSearcher:
    return HybridSearcher(indexed_vault, embedder=embedder)


def _note_text(vault: Any, note_id: str) -> str:
    return str(vault.note(note_id).text)


@pytest.mark.parametrize("mode", MODES)
def test_hits_point_exactly_into_the_note_text(searcher: HybridSearcher, indexed_vault: Any, mode: str) -> None:
    hits = searcher.search("warfarin dose", k=5, mode=mode)
    assert hits
    for h in hits:
        assert _note_text(indexed_vault, h.note_id)[h.start:h.end] == h.text
        assert h.end > h.start


@pytest.mark.parametrize(("query", "expected"), [
    ("albuterol", "Albuterol inhaler"),
    ("HbA1c", "HbA1c 9.1%"),
    ("penicillin hives", "Penicillin causes hives"),
    ("carpenter", "Works as a carpenter"),
])
def test_keyword_search_finds_the_chunk(searcher: HybridSearcher, query: str, expected: str) -> None:
    for mode in ("bm25", "hybrid"):
        hits = searcher.search(query, k=3, mode=mode)
        assert expected in hits[0].text, mode
    top = searcher.search(query, k=1, mode="bm25")[0]
    assert top.bm25_rank == 1 and top.bm25_score is not None and top.bm25_score > 0
    assert top.dense_rank is None


@pytest.mark.parametrize(("query", "expected"), [
    ("heart attack", "myocardial infarction"),
    ("high blood sugar", "diabetes mellitus"),
    ("tobacco use", "cigarettes"),
])
def test_meaning_search_finds_the_chunk_without_shared_words(searcher: HybridSearcher, query: str,
                                                             expected: str) -> None:
    assert searcher.search(query, mode="bm25") == []  # no word in common with any note
    dense = searcher.search(query, k=3, mode="dense")
    assert expected in dense[0].text
    assert dense[0].dense_rank == 1 and 0 < (dense[0].dense_score or 0) <= 1
    hybrid = searcher.search(query, k=3, mode="hybrid")
    assert expected in hybrid[0].text


def test_hybrid_combines_both_rankings(searcher: HybridSearcher) -> None:
    hits = searcher.search("warfarin anticoagulant for a heart rhythm problem", k=10, mode="hybrid")
    assert any(h.bm25_rank is not None and h.dense_rank is not None for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        expected = sum(1 / (RRF_K + r) for r in (h.bm25_rank, h.dense_rank) if r is not None)
        assert h.score == pytest.approx(expected)


@pytest.mark.parametrize("mode", MODES)
def test_patient_scope(searcher: HybridSearcher, indexed_vault: Any, mode: str) -> None:
    a, b = patient_id(indexed_vault, "MRN-A"), patient_id(indexed_vault, "MRN-B")
    everyone = searcher.search("warfarin", k=20, mode=mode)
    assert {h.patient_id for h in everyone} >= ({a, b} if mode != "dense" else {a})
    for pid in (a, b):
        hits = searcher.search("warfarin", patient_id=pid, k=20, mode=mode)
        assert hits and {h.patient_id for h in hits} == {pid}
        notes = {n.id for n in indexed_vault.notes(pid)}
        assert {h.note_id for h in hits} <= notes
    assert searcher.search("warfarin", patient_id="pt_unknown", mode=mode) == []


@pytest.mark.parametrize(("rankings", "expected"), [
    # one ranking: its own order
    ([[3, 1, 2]], [3, 1, 2]),
    # agreement wins over a single first place
    ([[1, 2, 3], [2, 3, 1]], [2, 1, 3]),
    # an item found by both outranks items found by one
    ([[1, 2], [3, 2]], [2, 1, 3]),
    # equal fused scores: better single rank first, then BM25 (first ranking) before dense
    ([[1, 2], [3, 4]], [1, 3, 2, 4]),
    # equal score and equal best rank: the earlier ranking wins, whatever the ids
    ([[5], [], [4]], [5, 4]),
    ([[], []], []),
    # rank 30 in both lists beats a single first place (2/90 > 1/61) ...
    ([list(range(100, 129)) + [7], list(range(200, 229)) + [7]], [7, 100, 200]),
    # ... rank 70 in both does not (2/130 < 1/61)
    ([list(range(100, 169)) + [7], list(range(200, 269)) + [7]], [100, 200, 101, 201]),
])
def test_rrf_fusion_order(rankings: list[list[int]], expected: list[int]) -> None:
    fused = rrf_fuse(rankings)
    ids = [i for i, _ in fused]
    assert ids[: len(expected)] == expected
    assert len(ids) == len({i for r in rankings for i in r})
    for item, score in fused:
        want = sum(1 / (RRF_K + r.index(item) + 1) for r in rankings if item in r)
        assert score == pytest.approx(want)


HOSTILE = ['"', '""', "'", "AND(", "warfarin AND(", "NEAR(warfarin daily)", "warfarin*", "*", "text:warfarin",
           "patient_id:x", "^warfarin", "-warfarin", "(((", ")", "a OR", "OR AND NOT", "{warfarin}", "[x]",
           "\\", "%_", "😀 warfarin", "", "   ", "\x00", "a" * 5000, "warfarin " * 200, "NOT warfarin",
           "'; DROP TABLE chunks; --"]


@pytest.mark.parametrize("query", HOSTILE)
def test_queries_with_fts5_syntax_never_error(searcher: HybridSearcher, indexed_vault: Any, query: str) -> None:
    for mode in MODES:
        hits = searcher.search(query, k=5, mode=mode)
        assert isinstance(hits, list)
        if "warfarin" in query and mode == "bm25":
            assert hits and any("warfarin" in h.text for h in hits)
        for h in hits:
            searcher.highlight(h, query)
    assert indexed_vault.counts()["chunks"] > 0


@pytest.mark.parametrize(("text", "expected"), [
    ("warfarin", '"warfarin"'),
    ('say "AND( hello', '"say" OR "hello"'),
    ("the of and", '"the" OR "of" OR "and"'),  # only stop words: kept
    ("Warfarin warfarin WARFARIN", '"warfarin"'),
    ("?!(*)", None),
])
def test_fts_query_quotes_every_word(text: str, expected: str | None) -> None:
    assert fts_query(text) == expected


def test_bad_mode_and_k_are_usage_errors(searcher: HybridSearcher) -> None:
    with pytest.raises(UsageError, match="mode"):
        searcher.search("x", mode="fuzzy")
    with pytest.raises(UsageError, match="k must"):
        searcher.search("x", k=0)


@pytest.mark.parametrize(("query", "marked"), [
    ("albuterol", ["Albuterol"]),
    ("diabetic", ["Diabetic", "diabetes"]),  # porter stemming, as BM25 matched it
    ("inhaled steroid", ["inhaled", "inhaler", "steroid"]),
])
def test_highlight_marks_matched_terms_in_note_offsets(searcher: HybridSearcher, indexed_vault: Any,
                                                       query: str, marked: list[str]) -> None:
    found: list[str] = []
    for hit in searcher.search(query, k=10, mode="bm25"):
        ranges = searcher.highlight(hit, query)
        assert ranges, "every BM25 hit has a matched term"
        text = _note_text(indexed_vault, hit.note_id)
        assert all(hit.start <= a < b <= hit.end for a, b in ranges)
        found += [text[a:b] for a, b in ranges]
    assert sorted(found) == marked


def test_highlight_of_a_meaning_only_hit_is_empty(searcher: HybridSearcher) -> None:
    hit = searcher.search("heart attack", k=1, mode="dense")[0]
    assert searcher.highlight(hit, "heart attack") == []


def test_search_sees_new_notes_and_erasure_without_a_new_searcher(filled_vault: Any, embedder: Any,
                                                                  tmp_path: Path) -> None:
    v = filled_vault
    index_vault(v, embedder=embedder)
    searcher = HybridSearcher(v, embedder=embedder)
    assert searcher.search("gout colchicine", mode="bm25") == []
    assert searcher.search("gout colchicine", patient_id=patient_id(v, "MRN-A"), mode="bm25") == []
    mrn, date, body = EXTRA_NOTE
    import_notes(v, write_notes(tmp_path / "more", {mrn: [(date, body)]}))
    index_vault(v, embedder=embedder)
    new_note = next(n.id for n in v.notes(patient_id(v, mrn)) if (n.date or "").startswith(date))
    for mode in MODES:
        assert searcher.search("gout colchicine", k=1, mode=mode)[0].note_id == new_note
        scoped = searcher.search("gout colchicine", patient_id=patient_id(v, mrn), k=1, mode=mode)
        assert scoped[0].note_id == new_note

    b = patient_id(v, "MRN-B")
    assert any(h.patient_id == b for h in searcher.search("asthma wheezing albuterol", k=20))
    v.erase_patient(b)
    for mode in MODES:
        for query in ("asthma wheezing albuterol", "warfarin", "penicillin hives", "difficulty breathing"):
            assert all(h.patient_id != b for h in searcher.search(query, k=50, mode=mode))
    assert searcher.search("albuterol", mode="bm25") == []
    assert searcher.unindexed_chunks() == 0


def test_words_in_most_chunks_are_left_out_of_bm25_while_a_rarer_one_remains(
        searcher: HybridSearcher, indexed_vault: Any) -> None:
    total = indexed_vault.counts()["chunks"]
    plan_chunks = len(searcher.search("plan", k=1000, mode="bm25"))
    assert plan_chunks > 0.2 * total  # "plan" is in most chunks of these notes
    assert searcher.bm25_terms("plan albuterol") == ["albuterol"]
    assert searcher.bm25_terms("plan") == ["plan"]
    assert searcher.bm25_terms("plan daily") in (["plan"], ["daily"])  # both common: the rarer stays
    hits = searcher.search("plan albuterol", k=3, mode="bm25")
    assert "Albuterol" in hits[0].text


def test_close_drops_derived_state_and_search_still_works(indexed_vault: Any, embedder: Any) -> None:
    s = HybridSearcher(indexed_vault, embedder=embedder)
    first = s.search("warfarin", k=3)
    assert s._dense is not None
    s.close()
    assert s._dense is None and not embedder._query_cache
    assert s.search("warfarin", k=3) == first


def test_keyword_search_on_the_shared_synthea_records(vault: Any, synthea_dir: Path) -> None:
    """BM25 alone (no vectors needed) on the real import of the shared FHIR patients."""
    from noteward.ingest.importer import import_paths

    import_paths(vault, [synthea_dir])
    searcher = HybridSearcher(vault)
    patients = [p for p in vault.patients() if p.note_count]
    assert len(patients) >= 2
    everyone = searcher.search("medications", k=200, mode="bm25")
    assert len({h.patient_id for h in everyone}) >= 2
    for p in patients[:3]:
        hits = searcher.search("medications", patient_id=p.id, k=20, mode="bm25")
        assert hits and {h.patient_id for h in hits} == {p.id}
        for h in hits[:5]:
            assert vault.note(h.note_id).text[h.start:h.end] == h.text
            assert any(h.text[a - h.start:b - h.start].lower().startswith("medic")
                       for a, b in searcher.highlight(h, "medications"))
