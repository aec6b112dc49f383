"""Odd but legal input at the vault's edges: file names with URI characters, passphrases with
a NUL byte or none at all, passwd without a new passphrase, a restore that fails. Each gets a
clear answer; none leaves a stray file or a false audit record."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteward.core.errors import UsageError, VaultLockedError
from noteward.store import audit
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.store.conftest import listing, sha256
from tests.store.test_backup_passwd import _corrupt_middle_page, _truncate
from tests.support.cli import noteward


def _actions(path: Path) -> list[str]:
    v = Vault.open(path, PASSPHRASE, audit_unlock=False)
    try:
        return [e["action"] for e in reversed(audit.events(v.conn, 100_000))]
    finally:
        v.close()


# -- defect 5: URI characters in the vault's path -----------------------------------------


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("plain", "we#ird.nwv"),
        ("plain", "what?.nwv"),
        ("plain", "per%20cent.nwv"),
        ("plain", "all%3F#of?them&mode=rw.nwv"),
        ("dir#1?x=%41", "vault.nwv"),
    ],
)
def test_vault_path_with_uri_characters(tmp_path: Path, folder: str, name: str) -> None:
    d = tmp_path / folder
    d.mkdir()
    path = d / name
    r = noteward("init", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    for _ in range(2):
        r = noteward("patients", "--vault", str(path), passphrase=PASSPHRASE)
        assert r.returncode == 0, r.stderr
    assert listing(d) == [name, name + ".keys"], "no stray file beside the vault"
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
    assert "failed_unlock" not in _actions(path)
    assert Vault.verify_file(path, PASSPHRASE)["ok"]


# -- defect 6: passwd without a new passphrase ----------------------------------------------


def test_passwd_without_a_new_passphrase_is_refused(sample_copy: Path) -> None:
    before = _actions(sample_copy)
    r = noteward("passwd", "--vault", str(sample_copy), passphrase=PASSPHRASE)  # stdin: not a tty
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Passphrase changed" not in r.stdout
    assert "new passphrase" in r.stderr, r.stderr
    assert "passwd" not in _actions(sample_copy)[len(before):]
    Vault.open(sample_copy, PASSPHRASE).close()  # still the old passphrase


def test_passwd_to_the_same_passphrase_is_refused(sample_copy: Path, tmp_path: Path) -> None:
    new = tmp_path / "new.txt"
    new.write_text(PASSPHRASE + "\n")
    r = noteward("passwd", "--vault", str(sample_copy), "--new-passphrase-file", str(new),
                 passphrase=PASSPHRASE)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "passwd" not in _actions(sample_copy)


# -- defect 7: NUL bytes and empty passphrases ----------------------------------------------


def test_init_with_a_nul_byte_in_the_passphrase_file(tmp_path: Path) -> None:
    d = tmp_path / "v"
    d.mkdir()
    pf = tmp_path / "pass.txt"
    pf.write_bytes(b"correct horse\x00battery\n")
    path = d / "vault.nwv"
    r = noteward("init", "--vault", str(path), "--passphrase-file", str(pf))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "NUL" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert listing(d) == [], "a refused init leaves nothing behind"
    r = noteward("init", "--vault", str(path), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr


def test_api_refuses_a_nul_byte_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "vault.nwv"
    with pytest.raises(UsageError, match="NUL"):
        Vault.create(path, "abc\x00def")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"correct horse\x00battery\n", "NUL"), (b"", "empty"), (b"\n", "empty")],
    ids=["nul", "empty", "newline-only"],
)
def test_open_with_an_unusable_passphrase_is_a_usage_error(
    sample_copy: Path, tmp_path: Path, content: bytes, words: str
) -> None:
    pf = tmp_path / "pass.txt"
    pf.write_bytes(content)
    digest, files = sha256(sample_copy), listing(sample_copy.parent)
    r = noteward("patients", "--vault", str(sample_copy), "--passphrase-file", str(pf))
    assert r.returncode == 2, r.stdout + r.stderr
    assert words in r.stderr, r.stderr
    assert "damaged" not in r.stderr and "restore" not in r.stderr, r.stderr
    assert sha256(sample_copy) == digest
    assert listing(sample_copy.parent) == files, "not counted as a failed unlock"


def test_empty_passphrase_from_the_environment(sample_copy: Path) -> None:
    r = noteward("check", "--vault", str(sample_copy), passphrase="")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "empty" in r.stderr and "damaged" not in r.stderr


# -- defect 11: restore errors name the user's files, not internal ones --------------------------


@pytest.mark.parametrize("spoil", [_corrupt_middle_page, _truncate], ids=["corrupt-page", "truncated"])
def test_restore_error_names_the_backup_not_a_temp_file(sample_copy: Path, tmp_path: Path, spoil) -> None:
    backup = tmp_path / "backup.nwv"
    v = Vault.open(sample_copy, PASSPHRASE)
    v.backup(backup)
    v.close()
    spoil(backup)
    with pytest.raises(VaultLockedError) as info:
        Vault.restore(backup, sample_copy, PASSPHRASE)
    assert ".restoring" not in str(info.value)
    assert str(backup) in str(info.value)
    r = noteward("restore", str(backup), "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 3
    assert ".restoring" not in r.stderr and str(backup) in r.stderr, r.stderr
