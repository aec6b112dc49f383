"""Chunks of notes and their full-text index (FTS5, ``chunks_fts.rowid = chunks.id``).

A chunk is a span of one note (end-exclusive code-point offsets into ``Note.text``); its
text and patient are kept in the FTS5 table, so searches are scoped without a join.
Writers run inside the caller's ``vault.transaction()``.

User text never reaches FTS5's query syntax from here: ``match`` arguments are built by
:func:`noteward.retrieval.search.match_expression`, which quotes every word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from noteward.core.models import Chunk
from noteward.store.vault import Vault


class PatientChunk(NamedTuple):
    """A chunk with the patient whose note it is in."""

    chunk: Chunk
    patient_id: str


class ChunkSpan(NamedTuple):
    """How many chunks a patient has, and the smallest and largest of their ids."""

    size: int
    first: int
    last: int


def add(vault: Vault, note_id: str, patient_id: str, start: int, end: int, section: str | None,
        text: str) -> int:
    """Add one chunk and its full-text row; ``text`` is the note's text[start:end].
    Returns the new chunk id."""
    conn = vault.conn
    cur = conn.execute(
        'INSERT INTO chunks(note_id, start, "end", section) VALUES (?,?,?,?)',
        (note_id, start, end, section),
    )
    conn.execute(
        "INSERT INTO chunks_fts(rowid, text, patient_id) VALUES (?,?,?)",
        (cur.lastrowid, text, patient_id),
    )
    return int(cur.lastrowid)


def add_many(vault: Vault, chunks: Sequence[PatientChunk]) -> None:
    """Add chunks under the ids they carry, with their full-text rows (bulk loads)."""
    conn = vault.conn
    conn.executemany(
        'INSERT INTO chunks(id, note_id, start, "end", section) VALUES (?,?,?,?,?)',
        [(c.id, c.note_id, c.start, c.end, c.section) for c, _ in chunks],
    )
    conn.executemany(
        "INSERT INTO chunks_fts(rowid, text, patient_id) VALUES (?,?,?)",
        [(c.id, c.text, pid) for c, pid in chunks],
    )


def count(vault: Vault) -> int:
    """How many chunks the vault holds (all patients)."""
    return int(vault.conn.execute("SELECT count(*) FROM chunks").fetchone()[0])


def max_id(vault: Vault) -> int:
    """The largest chunk id (0 for none): chunks only ever get larger ids."""
    row = vault.conn.execute("SELECT max(id) FROM chunks").fetchone()
    return int(row[0] or 0)


def texts(vault: Vault) -> list[str]:
    """Every chunk's text, in id order."""
    return [str(r[0]) for r in vault.conn.execute("SELECT text FROM chunks_fts ORDER BY rowid")]


def by_ids(vault: Vault, ids: Sequence[int]) -> dict[int, PatientChunk]:
    """The chunks with these ids (those that still exist), with their text and patient."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = vault.conn.execute(
        f'SELECT c.id, c.note_id, c.start, c."end", c.section, f.text, f.patient_id'
        f" FROM chunks c JOIN chunks_fts f ON f.rowid = c.id WHERE c.id IN ({marks})",
        list(ids),
    ).fetchall()
    return {
        int(r[0]): PatientChunk(Chunk(int(r[0]), r[1], int(r[2]), int(r[3]), r[5], r[4]), r[6])
        for r in rows
    }


def patient_span(vault: Vault, patient_id: str) -> ChunkSpan | None:
    """Count, smallest and largest chunk id of a patient's chunks (None when it has none).
    Chunks arrive import by import, so one patient's ids cluster."""
    row = vault.conn.execute(
        "SELECT count(*), min(c.id), max(c.id) FROM chunks c JOIN notes n ON n.id = c.note_id"
        " WHERE n.patient_id = ?", (patient_id,)).fetchone()
    if row is None or row[1] is None:
        return None
    return ChunkSpan(int(row[0]), int(row[1]), int(row[2]))


def patient_with_most_chunks(vault: Vault) -> str | None:
    """The id of the patient with the most chunks (ties: the smallest id); None when empty."""
    row = vault.conn.execute(
        "SELECT n.patient_id FROM chunks c JOIN notes n ON n.id = c.note_id"
        " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    return str(row[0]) if row else None


# -- full-text ranking ---------------------------------------------------------------------


def ensure_vocabulary(vault: Vault) -> None:
    """Make :func:`document_count` available on this connection: a TEMP fts5vocab table,
    which stores nothing, in memory or on disk."""
    vault.conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.noteward_chunks_vocab"
        " USING fts5vocab(main, 'chunks_fts', 'row')"
    )


def document_count(vault: Vault, term: str) -> int:
    """How many chunks hold ``term`` (an FTS5 token); needs :func:`ensure_vocabulary`."""
    row = vault.conn.execute("SELECT doc FROM temp.noteward_chunks_vocab WHERE term = ?", (term,)).fetchone()
    return int(row[0]) if row else 0


def bm25(vault: Vault, match: str, depth: int, scope: tuple[str, ChunkSpan] | None = None) -> list[tuple[int, float]]:
    """FTS5 BM25 ranking of ``match``: [(chunk id, -bm25)] best first, at most ``depth``.

    ``scope`` (patient id, that patient's :func:`patient_span`) limits it to one patient:
    the rowid range lets FTS5 skip the doclists outside the patient's chunks, and the
    patient_id test then decides.
    """
    sql = "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?"
    args: list[Any] = [match]
    if scope is not None:
        patient_id, span = scope
        sql += " AND rowid BETWEEN ? AND ? AND patient_id = ?"
        args += [span.first, span.last, patient_id]
    sql += " ORDER BY bm25(chunks_fts), rowid LIMIT ?"
    args.append(depth)
    return [(int(r[0]), -float(r[1])) for r in vault.conn.execute(sql, args)]


def highlight(vault: Vault, chunk_id: int, match: str, open_mark: str, close_mark: str) -> str | None:
    """The chunk's text with the terms ``match`` matched between the two marks (FTS5's
    own tokenizer and stemming); None when the chunk does not match."""
    row = vault.conn.execute(
        "SELECT highlight(chunks_fts, 0, ?, ?) FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid = ?",
        (open_mark, close_mark, match, chunk_id),
    ).fetchone()
    return None if row is None else str(row[0])
