"""store.unlock: the one place a failed unlock is counted, for the command line and the
desktop app alike (real vault files)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from noteward.core.errors import VaultLockedError
from noteward.store import audit
from noteward.store.unlock import open_vault, unlock
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE


def _failed_unlocks(path: Path) -> list[dict]:
    with Vault.open(path, PASSPHRASE) as v:
        return [e for e in audit.events(v.conn) if e["action"] == "failed_unlock"]


def test_unlock_counts_a_wrong_passphrase(vault: Vault, vault_path: Path):
    vault.close()
    for _ in range(2):
        with pytest.raises(VaultLockedError):
            unlock(vault_path, "wrong passphrase", busy_timeout_ms=2000)
    assert _failed_unlocks(vault_path)[0]["counts"] == {"attempts": 2}
    with unlock(vault_path, PASSPHRASE) as v:  # counted once, then cleared
        assert v.path == vault_path
    assert len(_failed_unlocks(vault_path)) == 1


def test_open_vault_from_arguments(vault: Vault, vault_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    vault.close()
    pf = tmp_path / "pass.txt"
    pf.write_text("not it\n", encoding="utf-8")
    with pytest.raises(VaultLockedError):
        open_vault(argparse.Namespace(vault=str(vault_path), passphrase_file=str(pf)))
    monkeypatch.setenv("NOTEWARD_VAULT", str(vault_path))
    monkeypatch.setenv("NOTEWARD_PASSPHRASE", PASSPHRASE)
    with open_vault(argparse.Namespace()) as v:
        assert v.path == vault_path
    assert _failed_unlocks(vault_path)[0]["counts"] == {"attempts": 1}
