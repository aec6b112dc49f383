"""Restore replaces the vault file: it must not do so while another Noteward process has the
vault open, or that process goes on writing into the replaced copy and its committed work is
lost from the live vault."""

from __future__ import annotations

from pathlib import Path

from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.store.conftest import listing
from tests.store.test_two_processes import Holder
from tests.support.cli import noteward

# A second process with the vault open (as `noteward import` or the desktop app has it):
# once told, it commits a write and closes.
OPEN_THEN_WRITE = """
import sys
from noteward.store.vault import Vault
v = Vault.open(sys.argv[1], sys.stdin.readline().rstrip("\\n"))
v.patients()
print("holding", flush=True)
sys.stdin.readline()
with v.transaction() as conn:
    conn.execute("INSERT INTO meta(key, value) VALUES ('written_by_other', 'yes')")
v.close()
print("released", flush=True)
"""


def test_restore_refuses_while_another_process_has_the_vault_open(sample_copy: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup.nwv"
    v = Vault.open(sample_copy, PASSPHRASE)
    v.backup(backup)
    v.close()
    h = Holder(sample_copy, OPEN_THEN_WRITE)
    try:
        r = noteward("restore", str(backup), "--vault", str(sample_copy), passphrase=PASSPHRASE,
                     env={"NOTEWARD_BUSY_TIMEOUT_MS": "300"})
        assert r.returncode == 7, r.stdout + r.stderr
        assert "open in another" in r.stderr and "nothing was restored" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        h.release()
    # the other process's commit is in the live vault, and nothing was set aside
    v = Vault.open(sample_copy, PASSPHRASE)
    try:
        assert v.meta("written_by_other") == "yes"
        assert v.check()["ok"]
    finally:
        v.close()
    assert not [n for n in listing(sample_copy.parent) if ".before-restore-" in n]
    # once it is closed, restore goes ahead
    r = noteward("restore", str(backup), "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr

