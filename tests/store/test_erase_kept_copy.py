"""Erasure reaches the copy restore keeps beside the vault (``*.before-restore-*``): a patient
erased from the vault must not live on in it. A kept copy the current passphrase cannot open
(the passphrase changed since) is named to the user, who can delete it."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteward.core.errors import UnknownPatientError
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.support import sqlcipher_pages as sp
from tests.support.cli import noteward


def _restore_over(vault: Path, tmp_path: Path) -> Path:
    backup = tmp_path / "backup.nwv"
    v = Vault.open(vault, PASSPHRASE)
    v.backup(backup)
    v.close()
    kept = Vault.restore(backup, vault, PASSPHRASE)
    assert kept is not None
    return kept


def test_erase_covers_the_copy_restore_kept(sample_copy: Path, tmp_path: Path) -> None:
    kept = _restore_over(sample_copy, tmp_path)
    assert any(b"Beta note" in page for _, page in sp.all_plaintext(kept, PASSPHRASE))
    r = noteward("erase", "--patient", "pt_beta", "--yes", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    v = Vault.open(kept, PASSPHRASE, audit_unlock=False)
    try:
        with pytest.raises(UnknownPatientError):
            v.patient("pt_beta")
        assert v.patient("pt_alpha").note_count == 40
        assert v.check()["ok"]
    finally:
        v.close()
    for label, page in sp.all_plaintext(kept, PASSPHRASE):
        assert b"Beta note" not in page, f"erased text still on disk in the kept copy ({label})"
    assert kept.name in r.stdout, "the user is told the kept copy was erased too"


def test_erase_names_a_kept_copy_it_cannot_open(sample_copy: Path, tmp_path: Path) -> None:
    kept = _restore_over(sample_copy, tmp_path)
    new = "a passphrase set after the restore 5"
    v = Vault.open(sample_copy, PASSPHRASE)
    v.change_passphrase(new)
    v.close()
    r = noteward("erase", "--patient", "pt_beta", "--yes", "--vault", str(sample_copy), passphrase=new)
    assert r.returncode == 0, r.stderr
    assert str(kept) in r.stderr and "delete" in r.stderr, r.stderr
    v = Vault.open(sample_copy, new, audit_unlock=False)
    try:
        with pytest.raises(UnknownPatientError):
            v.patient("pt_beta")
    finally:
        v.close()
