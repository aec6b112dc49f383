"""Unlocking: a wrong passphrase or a file that is not a usable vault gets a clear error,
never a traceback, and the file is left exactly as it was (no -wal/-shm left behind)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from noteward.core.errors import VaultCorruptError, VaultLockedError
from noteward.store.keys import key_file_path
from noteward.store.vault import WRONG_PASSPHRASE, Vault
from tests.conftest import PASSPHRASE
from tests.store.conftest import listing, sha256
from tests.support import sqlcipher_pages as sp
from tests.support.cli import noteward

PAGE = sp.PAGE_SIZE


def _plain_text(src: Path, dest: Path) -> None:
    dest.write_text("Patient: Nobody\n\nThis is a plain text file, not a vault.\n" * 50)


def _plain_text_whole_pages(src: Path, dest: Path) -> None:
    dest.write_bytes((b"not a vault " * 1000)[: 2 * PAGE])


def _plain_sqlite(src: Path, dest: Path) -> None:
    con = sqlite3.connect(dest)
    con.execute("CREATE TABLE meta(key TEXT, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('app', 'noteward-vault')")
    con.commit()
    con.close()


def _truncated_mid_page(src: Path, dest: Path) -> None:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 2 + 123])


def _truncated_whole_pages(src: Path, dest: Path) -> None:
    data = src.read_bytes()
    dest.write_bytes(data[: (len(data) // PAGE // 2) * PAGE])


def _corrupt_page(which: str) -> Callable[[Path, Path], None]:
    def make(src: Path, dest: Path) -> None:
        data = bytearray(src.read_bytes())
        n = len(data) // PAGE
        pgno = {"middle": n // 2, "last": n}[which]
        data[(pgno - 1) * PAGE + 700] ^= 0x5A
        dest.write_bytes(bytes(data))

    return make


def _empty(src: Path, dest: Path) -> None:
    dest.write_bytes(b"")


BAD_FILES = [
    # (id, make, expected error class, words the message must contain)
    ("plain-text", _plain_text, VaultLockedError, "whole number of pages"),
    ("plain-text-whole-pages", _plain_text_whole_pages, VaultLockedError, WRONG_PASSPHRASE),
    ("plain-sqlite", _plain_sqlite, VaultLockedError, "unencrypted SQLite"),
    ("empty", _empty, VaultLockedError, "truncated"),
    ("truncated-mid-page", _truncated_mid_page, VaultCorruptError, "truncated"),
    ("truncated-whole-pages", _truncated_whole_pages, VaultCorruptError, "damaged"),
    ("corrupt-middle-page", _corrupt_page("middle"), VaultCorruptError, "damaged"),
    ("corrupt-last-page", _corrupt_page("last"), VaultCorruptError, "damaged"),
]


@pytest.fixture
def bad_file(request: pytest.FixtureRequest, sample_vault: Path, tmp_path: Path) -> Path:
    make = request.param
    dest = tmp_path / "bad" / "vault.nwv"
    dest.parent.mkdir()
    make(sample_vault, dest)
    # a damaged vault file still has its key file beside it
    key_file_path(dest).write_bytes(key_file_path(sample_vault).read_bytes())
    return dest


def test_wrong_passphrase_api(sample_copy: Path) -> None:
    before, files = sha256(sample_copy), listing(sample_copy.parent)
    with pytest.raises(VaultLockedError) as info:
        Vault.open(sample_copy, "not the passphrase")
    assert str(info.value) == WRONG_PASSPHRASE
    assert not isinstance(info.value, VaultCorruptError)
    assert sha256(sample_copy) == before
    assert listing(sample_copy.parent) == files == ["vault.nwv", "vault.nwv.keys"]


def test_wrong_passphrase_cli_exit_3_without_traceback(sample_copy: Path) -> None:
    before = sha256(sample_copy)
    r = noteward("patients", "--vault", str(sample_copy), passphrase="not the passphrase")
    assert r.returncode == 3, r.stderr
    assert WRONG_PASSPHRASE in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert r.stdout == ""
    assert sha256(sample_copy) == before
    assert not [n for n in listing(sample_copy.parent) if n.endswith(("-wal", "-shm"))]
    # and the right passphrase still works afterwards
    ok = noteward("patients", "--json", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert ok.returncode == 0, ok.stderr
    assert "Alpha Sample" in ok.stdout


@pytest.mark.parametrize(
    ("bad_file", "error", "words"),
    [pytest.param(make, err, words, id=name) for name, make, err, words in BAD_FILES],
    indirect=["bad_file"],
)
def test_unusable_file_clear_error_and_untouched(bad_file: Path, error: type, words: str) -> None:
    before, files = sha256(bad_file), listing(bad_file.parent)
    with pytest.raises(error) as info:
        Vault.open(bad_file, PASSPHRASE)
    assert words in str(info.value)
    assert sha256(bad_file) == before, "a failed open must not modify the file"
    assert listing(bad_file.parent) == files, "a failed open must not leave -wal/-shm files"


@pytest.mark.parametrize(
    "bad_file",
    [pytest.param(make, id=name) for name, make, _, _ in BAD_FILES],
    indirect=True,
)
def test_unusable_file_cli_exit_3(bad_file: Path) -> None:
    before = sha256(bad_file)
    r = noteward("patients", "--vault", str(bad_file), passphrase=PASSPHRASE)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert r.stderr.startswith("noteward: ") and len(r.stderr.strip().splitlines()) == 1
    assert sha256(bad_file) == before
    assert not [n for n in listing(bad_file.parent) if n.endswith(("-wal", "-shm"))]


def test_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.nwv"
    r = noteward("patients", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 3
    assert "noteward init" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_create_refuses_existing_file(sample_copy: Path) -> None:
    from noteward.core.errors import NotewardError

    before = sha256(sample_copy)
    with pytest.raises(NotewardError, match="already exists"):
        Vault.create(sample_copy, PASSPHRASE)
    assert sha256(sample_copy) == before


def test_vault_from_a_newer_noteward_is_refused_untouched(sample_copy: Path) -> None:
    v = Vault.open(sample_copy, PASSPHRASE, audit_unlock=False)
    v.conn.execute("PRAGMA user_version = 99")
    v.close()
    before, files = sha256(sample_copy), listing(sample_copy.parent)
    r = noteward("patients", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode != 0 and "newer Noteward" in r.stderr
    assert "Traceback" not in r.stderr
    assert sha256(sample_copy) == before
    assert listing(sample_copy.parent) == files


def test_unknown_patient_exit_6(sample_copy: Path) -> None:
    for argv in (["notes", "--patient", "nobody"], ["erase", "--patient", "nobody", "--yes"]):
        r = noteward(*argv, "--vault", str(sample_copy), passphrase=PASSPHRASE)
        assert r.returncode == 6, r.stderr
        assert "Unknown patient" in r.stderr and "Traceback" not in r.stderr
