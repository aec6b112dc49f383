"""Every file the store writes is readable by its owner only (0600) and every folder it
creates is 0700, whatever the umask: the vault, its -wal/-shm, backups, the copy restore
keeps, the failed-unlock counter and the data folder. (Encrypted or not, other users of the
workstation have no business reading them.)"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.support.cli import REPO, child_env


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(*args: str, passphrase: str = PASSPHRASE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noteward.cli", *args],
        cwd=REPO, env=child_env({"NOTEWARD_PASSPHRASE": passphrase}), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: os.umask(0o022),  # noqa: PLW1509 - the usual desktop umask
    )


def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data = Path(os.environ["NOTEWARD_DATA_DIR"])
    assert not data.exists()
    r = _run("init")  # the default vault, in a data folder that does not exist yet
    assert r.returncode == 0, r.stderr
    vault = data / "vault.nwv"
    assert _mode(data) == 0o700
    assert _mode(vault) == 0o600

    # -wal and -shm while the vault is open
    old = os.umask(0o022)
    try:
        v = Vault.open(vault, PASSPHRASE)
        try:
            for suffix in ("-wal", "-shm"):
                side = Path(str(vault) + suffix)
                assert side.exists() and _mode(side) == 0o600, suffix
        finally:
            v.close()
    finally:
        os.umask(old)

    backup = tmp_path / "backups" / "new-folder" / "backup.nwv"
    r = _run("backup", str(backup), "--vault", str(vault))
    assert r.returncode == 0, r.stderr
    assert _mode(backup) == 0o600
    assert _mode(backup.parent) == 0o700 and _mode(backup.parent.parent) == 0o700

    r = _run("patients", "--vault", str(vault), passphrase="not the passphrase")
    assert r.returncode == 3
    counter = vault.with_name(vault.name + ".failed-unlocks")
    assert counter.exists() and _mode(counter) == 0o600

    vault.chmod(0o644)  # a vault an older Noteward wrote
    r = _run("restore", str(backup))
    assert r.returncode == 0, r.stderr
    kept = [p for p in data.iterdir() if ".before-restore-" in p.name and not p.name.endswith(".keys")]
    assert len(kept) == 1
    assert _mode(kept[0]) == 0o600
    assert _mode(vault) == 0o600
    for p in data.rglob("*"):  # the data folder also holds the audit head copies
        assert _mode(p) == (0o700 if p.is_dir() else 0o600), p.name


def test_a_shared_group_folder_gives_group_modes(tmp_path: Path) -> None:
    """IT's `noteward` group setup (README): a setgid, group-writable folder. Files made in
    it are 0660 and folders 2770, so several OS accounts in the group can use one vault;
    anywhere else the modes stay 0600/0700."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2770)
    vault = shared / "vault.nwv"
    r = _run("init", "--vault", str(vault))
    assert r.returncode == 0, r.stderr
    assert _mode(vault) == 0o660 and _mode(vault.with_name("vault.nwv.keys")) == 0o660
    old = os.umask(0o022)
    try:
        with Vault.open(vault, PASSPHRASE):
            for suffix in ("-wal", "-shm"):
                assert _mode(Path(str(vault) + suffix)) == 0o660, suffix
    finally:
        os.umask(old)
    r = _run("backup", str(shared / "backups" / "b.nwv"), "--vault", str(vault))
    assert r.returncode == 0, r.stderr
    assert _mode(shared / "backups") == 0o2770 and _mode(shared / "backups" / "b.nwv") == 0o660
    r = _run("patients", "--vault", str(vault), passphrase="not the passphrase")
    assert r.returncode == 3
    assert _mode(vault.with_name("vault.nwv.failed-unlocks")) == 0o660
    elsewhere = tmp_path / "private" / "v.nwv"
    r = _run("init", "--vault", str(elsewhere))
    assert r.returncode == 0, r.stderr
    assert _mode(elsewhere) == 0o600 and _mode(elsewhere.parent) == 0o700
