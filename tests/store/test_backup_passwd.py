"""Backup writes an encrypted copy under the same passphrase; restore checks a backup before
bringing it back and keeps the vault it replaces; a bad backup changes nothing. passwd
re-encrypts under a new passphrase: the old one stops working, the data stays."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from noteward.core.errors import NotewardError, VaultLockedError
from noteward.store.vault import LOST_PASSPHRASE_WARNING, WRONG_PASSPHRASE, Vault
from tests.conftest import PASSPHRASE
from tests.store.conftest import copy_vault, listing, sha256
from tests.support import sqlcipher_pages as sp
from tests.support.cli import noteward

NEW_PASSPHRASE = "a different, longer passphrase 42"


def _content(path: Path, passphrase: str = PASSPHRASE) -> dict:
    """What a vault holds, for before/after comparisons."""
    v = Vault.open(path, passphrase, audit_unlock=False)
    try:
        return {
            "patients": [(p.id, p.name, p.note_count) for p in v.patients()],
            "notes": {p.id: [(n.id, n.text) for n in v.notes(p.id)] for p in v.patients()},
            "fts": v.conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'alpha'").fetchone()[0],
        }
    finally:
        v.close()


# -- backup ---------------------------------------------------------------------------


def test_backup_is_an_encrypted_copy(open_copy: Vault, tmp_path: Path) -> None:
    # a committed write still in the WAL must be in the backup too
    with open_copy.transaction() as conn:
        conn.execute("UPDATE patients SET name = 'Beta Renamed' WHERE id = 'pt_beta'")
    out = open_copy.backup(tmp_path / "out" / "backup.nwv")
    assert listing(out.parent) == ["backup.nwv", "backup.nwv.keys"]  # no .partial, -wal or -shm left
    data = out.read_bytes()
    assert not data.startswith(b"SQLite format 3")
    assert b"Alpha" not in data and b"Beta Renamed" not in data
    con = sqlite3.connect(out)
    with pytest.raises(sqlite3.DatabaseError):
        con.execute("SELECT * FROM sqlite_master").fetchall()
    con.close()
    with pytest.raises(VaultLockedError, match=WRONG_PASSPHRASE):
        Vault.open(out, "not the passphrase")
    # same passphrase, SQLCipher 4 defaults: the independent decryptor authenticates every page
    pages = sp.db_pages(out, PASSPHRASE)
    assert any(b"Beta Renamed" in p for p in pages)
    report = Vault.verify_file(out, PASSPHRASE)
    assert report["ok"], report["problems"]
    original = _content(open_copy.path)
    open_copy.close()
    assert _content(out) == original


def test_backup_refuses_to_overwrite(open_copy: Vault, tmp_path: Path) -> None:
    out = tmp_path / "exists.nwv"
    out.write_bytes(b"precious")
    with pytest.raises(NotewardError, match="already exists"):
        open_copy.backup(out)
    assert out.read_bytes() == b"precious"


def test_backup_cli(sample_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-backup.nwv"
    r = noteward("backup", str(out), "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    assert "same passphrase" in r.stdout
    assert Vault.verify_file(out, PASSPHRASE)["ok"]


# -- restore --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _backup_then_change_once(sample_vault: Path, tmp_path_factory: pytest.TempPathFactory):
    """Built once: a backup of the sample vault, then the vault changed (a patient erased)."""
    d = tmp_path_factory.mktemp("restore-src")
    vault, backup = d / "vault.nwv", d / "b1.nwv"
    copy_vault(sample_vault, vault)
    v = Vault.open(vault, PASSPHRASE)
    v.backup(backup)
    v.close()
    before = _content(vault)
    v = Vault.open(vault, PASSPHRASE)
    v.erase_patient("pt_beta")
    v.close()
    after = _content(vault)
    assert before != after
    assert listing(d) == ["b1.nwv", "b1.nwv.keys", "vault.nwv", "vault.nwv.keys"]
    return vault, backup, before, after


@pytest.fixture
def backup_then_change(_backup_then_change_once, tmp_path: Path) -> tuple[Path, Path, dict, dict]:
    """Private copies of that changed vault and its backup."""
    vault, backup, before, after = _backup_then_change_once
    (tmp_path / "vault").mkdir()
    (tmp_path / "backups").mkdir()
    target, copy = tmp_path / "vault" / "vault.nwv", tmp_path / "backups" / "b1.nwv"
    copy_vault(vault, target)
    copy_vault(backup, copy)
    return target, copy, before, after


def test_restore_brings_backup_back_and_keeps_replaced_vault(backup_then_change) -> None:
    target, backup, before, after = backup_then_change
    kept = Vault.restore(backup, target, PASSPHRASE)
    assert kept is not None and kept.exists() and kept.parent == target.parent
    assert not kept.read_bytes().startswith(b"SQLite format 3")  # still encrypted
    assert _content(target) == before
    assert _content(kept) == after  # nothing lost: the replaced vault is kept
    v = Vault.open(target, PASSPHRASE)
    try:
        actions = [r[0] for r in v.conn.execute("SELECT action FROM audit ORDER BY seq")]
        assert "restore" in actions
        assert v.check()["ok"]
    finally:
        v.close()
    assert not [n for n in listing(target.parent) if n.endswith((".restoring", "-wal", "-shm"))]


def test_restore_does_not_modify_the_backup(backup_then_change) -> None:
    target, backup, before, _ = backup_then_change
    backup.chmod(stat.S_IRUSR)
    try:
        digest = sha256(backup)
        Vault.restore(backup, target, PASSPHRASE)
        assert sha256(backup) == digest, "checking a backup must not modify it"
        assert _content(target) == before
    finally:
        backup.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_restore_cli(backup_then_change) -> None:
    target, backup, before, _ = backup_then_change
    r = noteward("restore", str(backup), "--vault", str(target), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    assert "is kept, encrypted, at" in r.stdout
    assert _content(target) == before


def _corrupt_middle_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    n = len(data) // sp.PAGE_SIZE
    data[(n // 2) * sp.PAGE_SIZE + 300] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 // sp.PAGE_SIZE * sp.PAGE_SIZE])


def _other_passphrase(path: Path) -> None:
    path.unlink()
    other = Vault.create(path.with_name("other.nwv"), "someone else's passphrase")
    other.close()
    path.with_name("other.nwv").rename(path)


def _not_a_vault(path: Path) -> None:
    path.write_bytes(b"just some bytes\n" * 512)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_corrupt_middle_page, id="corrupt-page"),
        pytest.param(_truncate, id="truncated"),
        pytest.param(_other_passphrase, id="other-passphrase"),
        pytest.param(_not_a_vault, id="not-a-vault"),
    ],
)
def test_bad_backup_is_refused_and_nothing_changes(backup_then_change, spoil) -> None:
    target, backup, _, after = backup_then_change
    spoil(backup)
    target_digest, backup_digest = sha256(target), sha256(backup)
    files, backup_files = listing(target.parent), listing(backup.parent)
    with pytest.raises(VaultLockedError):
        Vault.restore(backup, target, PASSPHRASE)
    r = noteward("restore", str(backup), "--vault", str(target), passphrase=PASSPHRASE)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert sha256(target) == target_digest and sha256(backup) == backup_digest
    assert listing(target.parent) == files
    assert listing(backup.parent) == backup_files
    assert _content(target) == after


# -- passwd (rekey) -------------------------------------------------------------------


def test_change_passphrase(sample_copy: Path) -> None:
    before = _content(sample_copy)
    old_key = sp.vault_key(sample_copy, PASSPHRASE)
    v = Vault.open(sample_copy, PASSPHRASE)
    v.change_passphrase(NEW_PASSPHRASE)
    # still usable in the same session
    with v.transaction() as conn:
        conn.execute("INSERT INTO meta(key, value) VALUES ('after_rekey', 'yes')")
    v.close()
    with pytest.raises(VaultLockedError, match=WRONG_PASSPHRASE):
        Vault.open(sample_copy, PASSPHRASE)
    assert _content(sample_copy, NEW_PASSPHRASE) == before
    v = Vault.open(sample_copy, NEW_PASSPHRASE)
    try:
        assert v.meta("after_rekey") == "yes"
        assert v.check()["ok"]
        assert int(v.conn.execute("PRAGMA kdf_iter").fetchone()[0]) >= 256_000
    finally:
        v.close()
    # every page on disk is now under the new key, none under the old one
    assert sp.all_plaintext(sample_copy, NEW_PASSPHRASE)
    with pytest.raises(sp.PageAuthError):
        sp.db_pages(sample_copy, PASSPHRASE)
    with pytest.raises(sp.PageAuthError):  # the data key itself was replaced
        sp.db_pages(sample_copy, old_key)


def test_empty_new_passphrase_refused(open_copy: Vault) -> None:
    with pytest.raises(NotewardError, match="must not be empty"):
        open_copy.change_passphrase("")
    assert open_copy.patients()


@pytest.mark.parametrize("how", ["env", "file"])
def test_passwd_cli(sample_copy: Path, tmp_path: Path, how: str) -> None:
    before = _content(sample_copy)
    args = ["passwd", "--vault", str(sample_copy)]
    env = {}
    if how == "env":
        env["NOTEWARD_NEW_PASSPHRASE"] = NEW_PASSPHRASE
    else:
        f = tmp_path / "new-passphrase.txt"
        f.write_text(NEW_PASSPHRASE + "\n")
        args += ["--new-passphrase-file", str(f)]
    r = noteward(*args, passphrase=PASSPHRASE, env=env)
    assert r.returncode == 0, r.stderr
    assert LOST_PASSPHRASE_WARNING in r.stderr
    r = noteward("patients", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 3 and WRONG_PASSPHRASE in r.stderr
    assert _content(sample_copy, NEW_PASSPHRASE) == before


def test_init_warns_that_a_lost_passphrase_cannot_be_recovered(tmp_path: Path) -> None:
    path = tmp_path / "new.nwv"
    r = noteward("init", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    assert "cannot recover a lost passphrase" in r.stderr
    assert Vault.verify_file(path, PASSPHRASE)["ok"]


def test_init_with_a_recovery_key_does_not_say_a_lost_passphrase_is_lost_data(tmp_path: Path) -> None:
    path = tmp_path / "new.nwv"
    r = noteward("init", "--vault", str(path), "--recovery-key", passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    assert "cannot recover a lost passphrase" not in r.stderr
    assert "recovery key" in r.stderr.lower() or "recovery key" in r.stdout.lower()


def test_restore_onto_a_fresh_machine(backup_then_change, tmp_path: Path) -> None:
    """No vault and no data folder yet: `noteward restore BACKUP` puts it at the default path."""
    import os

    _, backup, before, _ = backup_then_change
    data_dir = Path(os.environ["NOTEWARD_DATA_DIR"])
    assert not data_dir.exists()
    r = noteward("restore", str(backup), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    from noteward.settings import default_vault_path

    assert _content(default_vault_path()) == before
    assert "is kept" not in r.stdout  # nothing was replaced
