"""Embedding vectors of chunks, stored inside the vault (one row per chunk and model).

The in-memory FAISS index is built from these rows at unlock; nothing else keeps a copy,
so erasing a patient's chunks (which cascades here) leaves no vector behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from noteward.core.models import Chunk
from noteward.store.vault import Vault


class StoredVector(NamedTuple):
    chunk_id: int
    patient_id: str
    vector: bytes


class VectorRow(NamedTuple):
    chunk_id: int
    model: str
    dim: int
    vector: bytes


def pending(vault: Vault, model: str) -> list[tuple[int, str]]:
    """(chunk id, text) of every chunk with no vector from ``model`` yet, in id order."""
    rows = vault.conn.execute(
        "SELECT c.id, f.text FROM chunks c JOIN chunks_fts f ON f.rowid = c.id"
        " LEFT JOIN embeddings e ON e.chunk_id = c.id"
        " WHERE e.chunk_id IS NULL OR e.model != ? ORDER BY c.id",
        (model,),
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def store(vault: Vault, rows: Iterable[VectorRow]) -> None:
    """Store (or replace) vectors; a chunk erased meanwhile is skipped, not resurrected.
    The caller holds the write transaction."""
    vault.conn.executemany(
        "INSERT OR REPLACE INTO embeddings(chunk_id, model, dim, vector)"
        " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
        [(*r, r.chunk_id) for r in rows],
    )


def add_many(vault: Vault, rows: Iterable[VectorRow]) -> None:
    """Insert vectors for chunks that exist (bulk loads); the caller holds the transaction."""
    vault.conn.executemany(
        "INSERT INTO embeddings(chunk_id, model, dim, vector) VALUES (?,?,?,?)", [tuple(r) for r in rows]
    )


def count(vault: Vault, model: str) -> int:
    """Chunks that have a vector from ``model``."""
    return int(vault.conn.execute("SELECT count(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0])


def max_chunk_id(vault: Vault) -> int:
    """The largest chunk id that has a vector (0 for none)."""
    row = vault.conn.execute("SELECT max(chunk_id) FROM embeddings").fetchone()
    return int(row[0] or 0)


def after(vault: Vault, model: str, min_chunk_id: int = 0) -> list[StoredVector]:
    """Vectors of ``model`` for chunks with ids above ``min_chunk_id``, with their
    patient, in chunk id order."""
    rows = vault.conn.execute(
        "SELECT e.chunk_id, n.patient_id, e.vector FROM embeddings e"
        " JOIN chunks c ON c.id = e.chunk_id JOIN notes n ON n.id = c.note_id"
        " WHERE e.model = ? AND e.chunk_id > ? ORDER BY e.chunk_id",
        (model, min_chunk_id),
    ).fetchall()
    return [StoredVector(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]


def embedded_chunks(vault: Vault) -> list[tuple[Chunk, bytes]]:
    """Every chunk that has a vector, with its text and the vector, in id order."""
    rows = vault.conn.execute(
        'SELECT c.id, c.note_id, c.start, c."end", c.section, f.text, e.vector FROM chunks c'
        " JOIN chunks_fts f ON f.rowid = c.id JOIN embeddings e ON e.chunk_id = c.id ORDER BY c.id"
    ).fetchall()
    return [(Chunk(int(r[0]), r[1], int(r[2]), int(r[3]), r[5], r[4]), bytes(r[6])) for r in rows]
