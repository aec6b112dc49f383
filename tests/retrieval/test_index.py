"""Embedding index: incremental indexing, stored vectors, cancel, the in-memory FAISS index."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from noteward.core.errors import CancelledError
from noteward.retrieval.embeddings import DIM, MODEL_ID, from_blobs, to_blob
from noteward.retrieval.index import build_faiss, index_vault
from noteward.store import embeddings
from tests.retrieval.conftest import EXTRA_NOTE, import_notes, write_notes


def _vectors(vault: Any) -> dict[int, bytes]:
    return {int(r[0]): bytes(r[1]) for r in vault.conn.execute("SELECT chunk_id, vector FROM embeddings")}


def test_incremental_index_embeds_only_new_chunks(filled_vault: Any, embedder: Any, tmp_path: Path) -> None:
    v = filled_vault
    n_chunks = v.counts()["chunks"]
    assert n_chunks > 5
    seen: list[tuple[int, int]] = []
    first = index_vault(v, embedder=embedder, progress=lambda d, t: seen.append((d, t)))
    assert (first.added, first.embedded, first.total_chunks) == (n_chunks, n_chunks, n_chunks)
    assert seen and seen[-1] == (n_chunks, n_chunks)
    before = _vectors(v)

    again = index_vault(v, embedder=embedder)
    assert again.added == 0 and again.pending_before == 0
    assert _vectors(v) == before

    mrn, date, body = EXTRA_NOTE
    import_notes(v, write_notes(tmp_path / "more", {mrn: [(date, body)]}))
    new_ids = {cid for cid, _ in embeddings.pending(v, MODEL_ID)}
    assert new_ids and not (new_ids & set(before))
    third = index_vault(v, embedder=embedder)
    assert third.added == len(new_ids)
    after = _vectors(v)
    assert set(after) == set(before) | new_ids
    assert {cid: after[cid] for cid in before} == before  # old vectors untouched
    rows = v.conn.execute("SELECT model, dim, length(vector) FROM embeddings").fetchall()
    assert set(rows) == {(MODEL_ID, DIM, DIM * 4)}
    actions = [r[0] for r in v.conn.execute("SELECT action FROM audit ORDER BY seq")]
    assert actions.count("index") == 2  # runs that added nothing leave no audit record


def test_stored_vector_is_the_models_unit_vector_for_the_chunk_text(indexed_vault: Any, embedder: Any) -> None:
    cid, text, blob = indexed_vault.conn.execute(
        "SELECT e.chunk_id, f.text, e.vector FROM embeddings e JOIN chunks_fts f ON f.rowid = e.chunk_id"
        " ORDER BY e.chunk_id LIMIT 1"
    ).fetchone()
    stored = from_blobs([blob])[0]
    assert np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-4)
    fresh = embedder.encode([text])[0]
    assert float(stored @ fresh) == pytest.approx(1.0, abs=1e-4)


def test_blob_round_trip() -> None:
    v = np.arange(DIM, dtype=np.float32) / DIM
    assert np.array_equal(from_blobs([to_blob(v), to_blob(-v)]), np.stack([v, -v]))
    assert from_blobs([]).shape == (0, DIM)


def test_cancel_keeps_finished_batches_and_the_next_run_continues(filled_vault: Any, embedder: Any) -> None:
    v = filled_vault
    total = len(embeddings.pending(v, MODEL_ID))
    cancel = threading.Event()

    def progress(done: int, _total: int) -> None:
        cancel.set()  # cancel as soon as the first batch is through

    with pytest.raises(CancelledError):
        index_vault(v, embedder=embedder, batch_size=2, commit_every=2, progress=progress, cancel=cancel)
    kept = v.counts()["embeddings"]
    assert 0 < kept < total
    rest = index_vault(v, embedder=embedder)
    assert rest.added == total - kept
    assert v.counts()["embeddings"] == total


def test_cancel_before_start_writes_nothing(filled_vault: Any, embedder: Any) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        index_vault(filled_vault, embedder=embedder, cancel=cancel)
    assert filled_vault.counts()["embeddings"] == 0


def test_build_faiss_holds_every_stored_vector(indexed_vault: Any) -> None:
    index = build_faiss(indexed_vault)
    stored = _vectors(indexed_vault)
    assert len(index) == len(stored) == indexed_vault.counts()["chunks"]
    assert set(index.chunk_ids.tolist()) == set(stored)
    # A stored vector finds its own chunk first, with similarity 1.
    cid = sorted(stored)[3]
    top = index.search(from_blobs([stored[cid]])[0], 1)
    assert top[0][0] == cid and top[0][1] == pytest.approx(1.0, abs=1e-4)


def test_dense_index_follows_imports_and_erasure_without_rebuild(filled_vault: Any, embedder: Any,
                                                                 tmp_path: Path) -> None:
    v = filled_vault
    index_vault(v, embedder=embedder)
    index = build_faiss(v)
    assert not index.refresh(v)  # nothing changed
    n = len(index)
    mrn, date, body = EXTRA_NOTE
    import_notes(v, write_notes(tmp_path / "more", {mrn: [(date, body)]}))
    added = index_vault(v, embedder=embedder).added
    assert index.refresh(v) and len(index) == n + added
    pid = v.patient("MRN-B").id
    b_chunks = {int(r[0]) for r in v.conn.execute(
        "SELECT c.id FROM chunks c JOIN notes n ON n.id = c.note_id WHERE n.patient_id = ?", (pid,))}
    v.erase_patient(pid)
    assert index.refresh(v)
    assert len(index) == n + added - len(b_chunks)
    assert not (set(index.chunk_ids.tolist()) & b_chunks)
    assert set(index.chunk_ids.tolist()) == set(_vectors(v))


@pytest.mark.parametrize("when", ["after indexing", "after searching"])
def test_no_file_but_the_vault_appears_in_its_folder(filled_vault: Any, embedder: Any, when: str) -> None:
    from noteward.retrieval.search import HybridSearcher

    v = filled_vault
    index_vault(v, embedder=embedder)
    if when == "after searching":
        searcher = HybridSearcher(v, embedder=embedder)
        for mode in ("bm25", "dense", "hybrid"):
            assert searcher.search("warfarin", mode=mode)
    allowed = {v.path.name, v.path.name + ".keys", v.path.name + "-wal", v.path.name + "-shm"}
    assert {p.name for p in v.path.parent.iterdir()} <= allowed


def test_quantised_scan_gives_the_exact_scan_results(indexed_vault: Any, embedder: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import noteward.retrieval.index as index_mod

    exact = build_faiss(indexed_vault)
    assert not exact.quantized
    monkeypatch.setattr(index_mod, "QUANTIZE_FROM", 1)
    monkeypatch.setattr(index_mod, "RERANK_MIN", 8)
    quant = build_faiss(indexed_vault)
    assert quant.quantized
    for query in ("heart attack", "warfarin", "smoking", "asthma inhaler"):
        q = embedder.encode_query(query)
        want, got = exact.search(q, 3), quant.search(q, 3)
        assert [c for c, _ in got] == [c for c, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
