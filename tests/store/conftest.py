"""Fixtures for vault tests: real SQLCipher files, built once where a test only reads them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSPHRASE


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def copy_vault(src: Path, dest: Path) -> Path:
    """Copy a vault as a user would: the file and the key file beside it (``.keys``)."""
    from noteward.store.keys import key_file_path

    dest.write_bytes(src.read_bytes())
    if key_file_path(src).exists():
        key_file_path(dest).write_bytes(key_file_path(src).read_bytes())
        key_file_path(dest).chmod(0o600)
    return dest


def add_patient(conn: Any, pid: str, name: str, notes: list[str]) -> list[str]:
    """Write a patient with notes, chunks and full-text rows straight into the schema (the
    importer has its own tests; these tests are about what the vault does with rows)."""
    conn.execute(
        "INSERT INTO patients(id, source_id, name, created_at) VALUES (?,?,?,?)",
        (pid, "src-" + pid, name, "2024-01-01T00:00:00+00:00"),
    )
    ids = []
    for i, text in enumerate(notes):
        nid = f"nt_{pid}_{i}"
        conn.execute(
            "INSERT INTO notes(id, patient_id, date, type, text, content_hash, created_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (nid, pid, f"2024-01-{i + 1:02d}", "Progress note", text,
             hashlib.sha256(text.encode()).hexdigest(), "2024-01-01T00:00:00+00:00"),
        )
        cur = conn.execute(
            'INSERT INTO chunks(note_id, start, "end", section) VALUES (?,?,?,?)',
            (nid, 0, len(text), "note"),
        )
        conn.execute(
            "INSERT INTO chunks_fts(rowid, text, patient_id) VALUES (?,?,?)",
            (cur.lastrowid, text, pid),
        )
        ids.append(nid)
    return ids


@pytest.fixture(scope="session")
def sample_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed vault with two patients and enough rows to span many pages (read-only use:
    tests copy it before changing anything)."""
    from noteward.store.vault import Vault

    path = tmp_path_factory.mktemp("sample") / "sample.nwv"
    v = Vault.create(path, PASSPHRASE, busy_timeout_ms=2000)
    with v.transaction() as conn:
        add_patient(conn, "pt_alpha", "Alpha Sample", [f"Alpha note {i} " * 40 for i in range(40)])
        add_patient(conn, "pt_beta", "Beta Sample", [f"Beta note {i} " * 40 for i in range(10)])
    v.close()
    assert listing(path.parent) == ["sample.nwv", "sample.nwv.keys"]
    return path


@pytest.fixture
def sample_copy(sample_vault: Path, tmp_path: Path) -> Path:
    """A private copy of the sample vault that a test may change."""
    dest = tmp_path / "copy" / "vault.nwv"
    dest.parent.mkdir()
    return copy_vault(sample_vault, dest)


@pytest.fixture
def open_copy(sample_copy: Path) -> Iterator[Any]:
    from noteward.store.vault import Vault

    v = Vault.open(sample_copy, PASSPHRASE, busy_timeout_ms=2000)
    yield v
    v.close()
