"""The vault file is SQLCipher 4 with its default settings, checked two ways: SQLCipher's
own pragmas, and an independent decryptor (tests/support/sqlcipher_pages.py) that
authenticates and decrypts every page with the documented defaults."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE
from tests.support import sqlcipher_pages as sp


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [
        ("cipher_page_size", "4096"),
        ("cipher_use_hmac", "1"),
        ("cipher_hmac_algorithm", "HMAC_SHA512"),
        ("cipher_kdf_algorithm", "PBKDF2_HMAC_SHA512"),
        ("cipher_plaintext_header_size", "0"),
    ],
)
def test_cipher_settings_are_sqlcipher4_defaults(open_copy, pragma: str, expected: str) -> None:
    assert str(open_copy.conn.execute(f"PRAGMA {pragma}").fetchone()[0]) == expected


@pytest.mark.parametrize(
    ("pragma", "expected", "why"),
    [
        ("temp_store", "2", "MEMORY: sorts and temp tables never go to a temp file"),
        ("secure_delete", "1", "deleted content is overwritten, not left in free space"),
        ("journal_mode", "wal", "readers and one writer across processes"),
        ("foreign_keys", "1", "erasing a patient cannot leave orphans"),
    ],
)
def test_connection_settings(open_copy, pragma: str, expected: str, why: str) -> None:
    assert str(open_copy.conn.execute(f"PRAGMA {pragma}").fetchone()[0]) == expected, why


def test_kdf_iterations_at_least_sqlcipher4_default(open_copy) -> None:
    assert int(open_copy.conn.execute("PRAGMA kdf_iter").fetchone()[0]) >= 256_000


def test_file_has_no_plaintext_header(sample_vault: Path) -> None:
    head = sample_vault.read_bytes()[:100]
    assert not head.startswith(b"SQLite format 3")
    assert b"Alpha" not in sample_vault.read_bytes()


def test_independent_decryptor_reads_page1_as_sqlite_btree(sample_vault: Path) -> None:
    pages = sp.db_pages(sample_vault, PASSPHRASE)  # every page's HMAC is verified
    assert len(pages) == sample_vault.stat().st_size // sp.PAGE_SIZE > 10
    page1 = pages[0]
    assert page1[:16] == sp.SQLITE_HEADER
    assert struct.unpack(">H", page1[16:18])[0] == sp.PAGE_SIZE
    assert page1[20] == sp.RESERVE  # bytes reserved at the end of each page
    assert page1[21:24] == b"\x40\x20\x20"  # fixed payload fractions of every SQLite file
    assert struct.unpack(">I", page1[28:32])[0] == len(pages)  # in-header database size
    assert sp.btree_page_type(page1, 1) in (5, 13)  # sqlite_master: table b-tree page
    assert b"CREATE TABLE patients" in page1 or any(b"CREATE TABLE patients" in p for p in pages)
    assert any(b"Alpha note 7 Alpha note 7" in p for p in pages)
    assert any(b"Beta Sample" in p for p in pages)


def test_decryptor_rejects_wrong_key_and_altered_page(sample_vault: Path, tmp_path: Path) -> None:
    with pytest.raises(sp.PageAuthError, match="page 1"):
        sp.db_pages(sample_vault, PASSPHRASE + "x")
    key = sp.vault_key(sample_vault, PASSPHRASE)  # the data key the passphrase unwraps
    with pytest.raises(sp.PageAuthError, match="page 1: HMAC"):
        sp.db_pages(sample_vault, bytes(b ^ 1 for b in key))
    data = bytearray(sample_vault.read_bytes())
    data[3 * sp.PAGE_SIZE + 100] ^= 0x01
    altered = tmp_path / "altered.nwv"
    altered.write_bytes(bytes(data))
    with pytest.raises(sp.PageAuthError, match="page 4"):
        sp.db_pages(altered, key)


def test_decryptor_reads_wal_frames(open_copy) -> None:
    with open_copy.transaction() as conn:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('probe', 'wal frame probe 4711')"
        )
    wal = Path(str(open_copy.path) + "-wal")
    frames = sp.wal_frames(wal, PASSPHRASE, sp.read_salt(open_copy.path))
    assert frames, "a write on a WAL vault leaves frames in the -wal file"
    assert any(b"wal frame probe 4711" in f.page for f in frames)
    assert any(f.commit_size for f in frames)
    assert not any(b"wal frame probe 4711" in p for p in sp.db_pages(open_copy.path, PASSPHRASE))


@pytest.mark.parametrize(
    ("passphrase", "near_miss"),
    [
        pytest.param("it's a 'quoted' passphrase", "its a 'quoted' passphrase", id="quotes"),
        pytest.param("pässwörd – 患者 🔒", "passwort – 患者 🔒", id="unicode"),
        pytest.param("  spaces around  ", "spaces around", id="spaces"),
        pytest.param("x", "X", id="one-char"),
    ],
)
def test_passphrase_is_used_exactly(tmp_path: Path, passphrase: str, near_miss: str) -> None:
    """The key is derived from the passphrase's exact UTF-8 bytes (checked by the
    independent decryptor), quotes cannot break out of the PRAGMA, and a near miss fails."""
    from noteward.core.errors import VaultLockedError
    from noteward.store.vault import Vault

    path = tmp_path / "p.nwv"
    Vault.create(path, passphrase).close()
    assert sp.db_pages(path, passphrase)
    with pytest.raises(VaultLockedError):
        Vault.open(path, near_miss)
    v = Vault.open(path, passphrase)
    try:
        assert v.check()["ok"]
    finally:
        v.close()
