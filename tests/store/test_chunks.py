"""store.chunks and store.embeddings on a real SQLCipher vault file."""

from __future__ import annotations

import numpy as np
import pytest

from noteward.core.models import Chunk, Note, Patient
from noteward.store import chunks, embeddings, notes, patients
from noteward.store.vault import Vault

CREATED = "2024-01-01T00:00:00+00:00"
TEXTS = {
    "pt_a": ["Patient reports chest pain radiating to the left arm.", "Diabetes mellitus, on metformin."],
    "pt_b": ["Chest pain resolved. Metformin continued.", "Knee pain after a fall."],
}


@pytest.fixture
def filled(vault: Vault) -> Vault:
    with vault.transaction():
        for pid, texts in TEXTS.items():
            patients.add(vault, Patient(pid, "src-" + pid, pid), CREATED)
            for i, text in enumerate(texts):
                nid = f"nt_{pid}_{i}"
                notes.add(vault, Note(nid, pid, text, f"2024-01-0{i + 1}", content_hash=str(i)),
                          import_id=None, created_at=CREATED)
                half = len(text) // 2
                chunks.add(vault, nid, pid, 0, half, "first", text[:half])
                chunks.add(vault, nid, pid, half, len(text), None, text[half:])
    return vault


def test_chunks_are_numbered_and_found(filled: Vault):
    assert chunks.count(filled) == 8 and chunks.max_id(filled) == 8
    assert len(chunks.texts(filled)) == 8 and chunks.texts(filled)[0] == TEXTS["pt_a"][0][:26]
    got = chunks.by_ids(filled, [2, 7, 999])
    assert set(got) == {2, 7}
    c, pid = got[2]
    text = TEXTS["pt_a"][0]
    assert pid == "pt_a" and c == Chunk(2, "nt_pt_a_0", len(text) // 2, len(text), text[len(text) // 2:], None)
    assert chunks.by_ids(filled, []) == {}


def test_patient_span_and_biggest(filled: Vault):
    assert chunks.patient_span(filled, "pt_b") == chunks.ChunkSpan(4, 5, 8)
    assert chunks.patient_span(filled, "nobody") is None
    with filled.transaction():
        chunks.add(filled, "nt_pt_b_1", "pt_b", 0, 4, None, "Knee")
    assert chunks.patient_with_most_chunks(filled) == "pt_b"


def test_bm25_ranks_and_scopes(filled: Vault):
    hits = chunks.bm25(filled, '"metformin"', 10)
    assert {cid for cid, _ in hits} == {4, 6}  # "metformin" is in one chunk of each patient
    assert all(score > 0 for _, score in hits)
    span = chunks.patient_span(filled, "pt_b")
    assert span is not None
    scoped = chunks.bm25(filled, '"metformin"', 10, ("pt_b", span))
    assert [cid for cid, _ in scoped] == [6]
    assert chunks.bm25(filled, '"metformin"', 10, ("pt_b", chunks.ChunkSpan(1, 1, 5))) == []
    assert chunks.bm25(filled, '"metformin"', 1) == hits[:1]


def test_vocabulary_and_highlight(filled: Vault):
    chunks.ensure_vocabulary(filled)
    chunks.ensure_vocabulary(filled)  # idempotent
    assert chunks.document_count(filled, "pain") == 3
    assert chunks.document_count(filled, "absent") == 0
    cid = chunks.bm25(filled, '"knee"', 1)[0][0]
    marked = chunks.highlight(filled, cid, '"knee"', "[", "]")
    assert marked is not None and "[Knee]" in marked
    assert chunks.highlight(filled, 1, '"knee"', "[", "]") is None


def test_bulk_chunks_with_their_ids(filled: Vault):
    with filled.transaction():
        chunks.add_many(filled, [chunks.PatientChunk(Chunk(100, "nt_pt_a_0", 0, 7, "Patient", "x"), "pt_a")])
    assert chunks.by_ids(filled, [100])[100].chunk.text == "Patient" and chunks.max_id(filled) == 100


def test_embeddings_pending_store_and_read(filled: Vault):
    assert [cid for cid, _ in embeddings.pending(filled, "m")] == list(range(1, 9))
    vec = np.arange(4, dtype=np.float32).tobytes()
    with filled.transaction():
        embeddings.store(filled, [embeddings.VectorRow(cid, "m", 4, vec) for cid in (1, 2, 5, 4242)])
    # 4242 is no chunk: skipped, not created
    assert embeddings.count(filled, "m") == 3 and embeddings.max_chunk_id(filled) == 5
    assert [cid for cid, _ in embeddings.pending(filled, "m")] == [3, 4, 6, 7, 8]
    assert len(embeddings.pending(filled, "other-model")) == 8
    got = embeddings.after(filled, "m", 1)
    assert [(v.chunk_id, v.patient_id) for v in got] == [(2, "pt_a"), (5, "pt_b")]
    assert got[0].vector == vec
    both = embeddings.embedded_chunks(filled)
    assert [c.id for c, _ in both] == [1, 2, 5] and both[2][0].text == TEXTS["pt_b"][0][:20]
    with filled.transaction():
        embeddings.add_many(filled, [embeddings.VectorRow(3, "m", 4, vec)])
    assert embeddings.count(filled, "m") == 4


def test_erasure_takes_chunks_and_vectors(filled: Vault):
    with filled.transaction():
        embeddings.store(filled, [embeddings.VectorRow(cid, "m", 1, b"\0\0\0\0") for cid in range(1, 9)])
    filled.erase_patient("pt_a")
    assert chunks.count(filled) == 4 and embeddings.count(filled, "m") == 4
    assert chunks.patient_span(filled, "pt_a") is None
    assert {v.patient_id for v in embeddings.after(filled, "m")} == {"pt_b"}
