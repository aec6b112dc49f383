"""Storage the benchmarks need and the app never uses: an unencrypted vault of the same
schema (the baseline that shows what encryption costs), WAL checkpoints between timed
runs, and a serialised FAISS index kept as one BLOB (the alternative to rebuilding the
index from per-chunk vectors, timed against it). Only benchmarks call these, always on
temporary vaults.
"""

from __future__ import annotations

from pathlib import Path

from sqlcipher3 import dbapi2 as sqlcipher

from noteward.store.keys import User
from noteward.store.vault import APP_ID, Vault, _Connection, _Key, now_iso


def plain_vault(path: Path) -> Vault:
    """A new vault at ``path`` without a key (SQLCipher without a key is plain SQLite),
    with the same schema and pragmas as an encrypted one."""
    conn = sqlcipher.connect(
        str(path), timeout=5, isolation_level=None, check_same_thread=False, factory=_Connection
    )
    Vault._configure(conn, 5000)
    v = Vault(path, conn, _Key("", User("bench", "admin"), "", None, None), 5000)
    v._migrate()
    with v.transaction():
        conn.execute("INSERT INTO meta(key, value) VALUES ('app', ?), ('created_at', ?)", (APP_ID, now_iso()))
    return v


def checkpoint(vault: Vault) -> None:
    """Write the WAL back into the database file and empty it (so the next timed run
    starts from the same state)."""
    vault.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def write_index_blob(vault: Vault, data: bytes) -> None:
    """Keep ``data`` (a serialised index) as one BLOB in a side table, then checkpoint."""
    with vault.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS bench_faiss_blob (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        tx.execute("INSERT OR REPLACE INTO bench_faiss_blob(id, data) VALUES (1, ?)", (data,))
    checkpoint(vault)


def read_index_blob(vault: Vault) -> bytes:
    """The BLOB :func:`write_index_blob` stored."""
    return bytes(vault.conn.execute("SELECT data FROM bench_faiss_blob WHERE id = 1").fetchone()[0])
