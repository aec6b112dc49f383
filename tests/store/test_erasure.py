"""Erasure on disk: decrypt EVERY page of the vault file (free pages included) and every
WAL frame with the vault key, and show an erased patient's text is there before and gone
after (notes, FTS5 shadow tables, embeddings, summaries, facts), while another patient's
text remains. Uses the independent decryptor in tests/support/sqlcipher_pages.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.support import sqlcipher_pages as sp
from tests.support.cli import REPO, child_env, noteward

GONE = {
    "name": "Ingrid Vasquez-Probe",
    "source_id": "SRC-ERASE-5531",
    "note1": "Xylophonizing tremor noted in the left hand during the Thursday clinic.",
    "note2": "Brought a Zanzibarian passport for the travel letter; tremor unchanged.",
    "embedding": "EMBEDMARK-GONE",
    "summary": "SUMMARYMARK-GONE recurrent tremor",
    "fact": "FACTMARK-GONE essential tremor",
}
KEPT = {
    "name": "Bartholomew Keepwell",
    "note1": "Quokkafying rash on both forearms, improving with emollients.",
    "embedding": "EMBEDMARK-KEPT",
    "summary": "SUMMARYMARK-KEPT rash improving",
}
# Words whose stemmed form is looked up in the FTS5 index itself.
GONE_WORDS = ("xylophon", "zanzibarian")
KEPT_WORDS = ("quokkafi",)


def _note(conn: Any, pid: str, nid: str, date: str, text: str, embed: str) -> None:
    conn.execute(
        "INSERT INTO notes(id, patient_id, date, type, text, content_hash, created_at)"
        " VALUES (?,?,?,?,?,?,?)",
        (nid, pid, date, "Progress note", text, hashlib.sha256(text.encode()).hexdigest(), date),
    )
    cid = conn.execute(
        'INSERT INTO chunks(note_id, start, "end", section) VALUES (?,?,?,?)', (nid, 0, len(text), "note")
    ).lastrowid
    conn.execute("INSERT INTO chunks_fts(rowid, text, patient_id) VALUES (?,?,?)", (cid, text, pid))
    conn.execute(
        "INSERT INTO embeddings(chunk_id, model, dim, vector) VALUES (?,?,?,?)",
        (cid, "test-model", 16, (embed.encode() + b"\x00") * 8),
    )


def _summary(conn: Any, pid: str, text: str) -> None:
    conn.execute(
        "INSERT INTO summaries(id, patient_id, created_at, model_id, model_sha256, prompt_version,"
        " covers, body, approved_text) VALUES (?,?,?,?,?,?,?,?,?)",
        ("su_" + pid[3:], pid, "2024-03-01", "m", "0" * 64, "v1", "[]",
         json.dumps({"sentences": [text]}), text),
    )


def _index_terms(v: Vault, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The exact terms the FTS5 index stores for these word prefixes (after stemming)."""
    v.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_terms USING fts5vocab(main, chunks_fts, row)")
    out = {}
    for prefix in prefixes:
        row = v.conn.execute("SELECT term FROM temp.fts_terms WHERE term LIKE ?", (prefix + "%",)).fetchone()
        assert row, f"no index term for {prefix!r}"
        out[prefix] = row[0]
    return out


def _where(pages: list[tuple[str, bytes]], needle: str) -> list[str]:
    b = needle.encode("utf-8")
    return [label for label, page in pages if b in page]


@pytest.fixture
def two_patients(vault_path: Path) -> Iterator[Vault]:
    """Patient GONE's first note checkpointed into the main file, the second only in the
    WAL; patient KEPT alongside."""
    v = Vault.create(vault_path, PASSPHRASE)
    with v.transaction() as conn:
        for pid, p in (("pt_gone", GONE), ("pt_kept", KEPT)):
            conn.execute(
                "INSERT INTO patients(id, source_id, name, created_at) VALUES (?,?,?,?)",
                (pid, p.get("source_id", "SRC-" + pid), p["name"], "2024-01-01"),
            )
            _note(conn, pid, "nt_" + pid + "1", "2024-01-02", p["note1"], p["embedding"])
            _summary(conn, pid, p["summary"])
        conn.execute(
            "INSERT INTO facts(patient_id, kind, display, source_id) VALUES (?,?,?,?)",
            ("pt_gone", "condition", GONE["fact"], "cond-1"),
        )
    v.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with v.transaction() as conn:
        _note(conn, "pt_gone", "nt_pt_gone2", "2024-01-09", GONE["note2"], GONE["embedding"])
    yield v
    v.close()


def test_erase_patient_leaves_no_trace_in_any_page_or_wal_frame(two_patients: Vault) -> None:
    v = two_patients
    terms = _index_terms(v, GONE_WORDS + KEPT_WORDS)
    assert all(t.islower() for t in terms.values())
    before = sp.all_plaintext(v.path, PASSPHRASE)
    # Before: the decryptor sees everything, in the main file and in the WAL.
    db_only = [(label, p) for label, p in before if label.startswith("db ")]
    wal_only = [(label, p) for label, p in before if label.startswith("wal ")]
    assert _where(db_only, GONE["note1"]) and _where(db_only, GONE["name"])
    assert _where(wal_only, GONE["note2"]), "the second note should only be in the WAL yet"
    assert not _where(db_only, GONE["note2"])
    for needle in [*GONE.values(), *KEPT.values(), *terms.values()]:
        assert _where(before, needle), f"{needle!r} should be on disk before erasure"

    counts = v.erase_patient("pt_gone")
    assert counts["notes"] == 2 and counts["chunks"] == 2

    # After, with the vault still open (WAL and all), then after closing it.
    for state in ("open", "closed"):
        if state == "closed":
            v.close()
        after = sp.all_plaintext(v.path, PASSPHRASE)  # every page and frame, HMAC-checked
        assert len(after) >= 5
        for key, needle in [*GONE.items(), *((w, terms[w]) for w in GONE_WORDS)]:
            assert not _where(after, needle), f"{key} {needle!r} still on disk ({state}): {_where(after, needle)}"
        for key, needle in [*KEPT.items(), *((w, terms[w]) for w in KEPT_WORDS)]:
            assert _where(after, needle), f"{key} {needle!r} of the other patient is gone ({state})"

    v2 = Vault.open(v.path, PASSPHRASE)
    try:
        assert [p.id for p in v2.patients()] == ["pt_kept"]
        assert v2.conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'tremor'").fetchone()[0] == 0
        assert v2.conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'rash'").fetchone()[0] == 1
        assert v2.counts()["embeddings"] == 1 and v2.counts()["summaries"] == 1
        assert v2.check()["ok"]
    finally:
        v2.close()


IDLE_READER = """
import sys
from noteward.store.vault import Vault
v = Vault.open(sys.argv[1], sys.stdin.readline().rstrip("\\n"), audit_unlock=False)
v.patients()
print("open", flush=True)
sys.stdin.readline()
v.close()
"""


def test_erase_via_cli_while_another_process_has_the_vault_open(two_patients: Vault) -> None:
    """The desktop app may hold the vault open while `noteward erase` runs."""
    path = two_patients.path
    two_patients.close()
    other = subprocess.Popen(
        [sys.executable, "-c", IDLE_READER, str(path)], cwd=REPO, env=child_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert other.stdin and other.stdout
        other.stdin.write(PASSPHRASE + "\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "open"
        r = noteward("erase", "--patient", GONE["source_id"], "--yes", "--vault", str(path), passphrase=PASSPHRASE)
        assert r.returncode == 0, r.stderr
        assert GONE["name"] not in r.stdout + r.stderr and GONE["source_id"] not in r.stdout + r.stderr
        after = sp.all_plaintext(path, PASSPHRASE)
        for key, needle in GONE.items():
            assert not _where(after, needle), f"{key} still on disk: {_where(after, needle)}"
        assert _where(after, KEPT["note1"])
    finally:
        if other.poll() is None and other.stdin:
            other.stdin.write("\n")
            other.stdin.flush()
        other.wait(timeout=60)


READER_IN_TRANSACTION = """
import sys
from noteward.store.vault import Vault
v = Vault.open(sys.argv[1], sys.stdin.readline().rstrip("\\n"), audit_unlock=False)
v.conn.execute("BEGIN")
v.conn.execute("SELECT count(*) FROM notes").fetchone()  # holds a read snapshot
print("reading", flush=True)
sys.stdin.readline()
v.conn.execute("COMMIT")
v.close()
"""


def test_erase_says_so_when_a_reader_keeps_old_pages_in_the_wal(vault_path: Path) -> None:
    """A reader holding a snapshot longer than the busy timeout stops the WAL from being
    wiped; erase must not report a clean wipe then, and the wipe completes once the
    reader is gone."""
    v = Vault.create(vault_path, PASSPHRASE, busy_timeout_ms=300)
    with v.transaction() as conn:
        conn.execute(
            "INSERT INTO patients(id, source_id, name, created_at) VALUES (?,?,?,?)",
            ("pt_gone", GONE["source_id"], GONE["name"], "2024-01-01"),
        )
        _note(conn, "pt_gone", "nt_g1", "2024-01-02", GONE["note1"], GONE["embedding"])
    reader = subprocess.Popen(
        [sys.executable, "-c", READER_IN_TRANSACTION, str(vault_path)], cwd=REPO, env=child_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdin and reader.stdout
        reader.stdin.write(PASSPHRASE + "\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "reading"
        from noteward.core.errors import VaultBusyError

        with pytest.raises(VaultBusyError, match="write-ahead log"):
            v.erase_patient("pt_gone")
        assert v.patients() == []  # the erasure itself committed
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.wait(timeout=60) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(timeout=60)
        v.close()
    after = sp.all_plaintext(vault_path, PASSPHRASE)
    for key, needle in GONE.items():
        assert not _where(after, needle), f"{key} still on disk: {_where(after, needle)}"
