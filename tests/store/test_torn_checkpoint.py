"""A checkpoint torn while it extended the file (a full disk at close) loses nothing.

Found by the fault campaign (`make faults`): an import or index under a file-size limit
reported success, then the vault would not open ("not a whole number of pages"), although
every committed page was still in its write-ahead log. Here a child commits rows and is
killed before any checkpoint, and part of one page is appended to the file, as a write
that stopped at EFBIG leaves it.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.conftest import PASSPHRASE
from tests.store.conftest import copy_vault
from tests.support.cli import noteward, python

_COMMIT_AND_DIE = """
import os, signal, sys
from noteward.store.vault import Vault
from tests.store.conftest import add_patient
v = Vault.open(sys.argv[1], sys.argv[2])
v.conn.execute("PRAGMA wal_autocheckpoint = 0")
with v.transaction() as conn:
    add_patient(conn, "pt_torn", "Torn Sample", [f"Torn note {i} " * 200 for i in range(60)])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_checkpoint_torn_at_the_end_of_the_file_keeps_every_committed_row(
    sample_vault: Path, tmp_path: Path
) -> None:
    from noteward.store.vault import PAGE_SIZE

    path = tmp_path / "torn.nwv"
    copy_vault(sample_vault, path)
    path.chmod(0o600)
    out = python(_COMMIT_AND_DIE.replace("sys.argv[1], sys.argv[2]", f"{str(path)!r}, {PASSPHRASE!r}"))
    assert out.returncode == -signal.SIGKILL, out.stderr
    wal = Path(str(path) + "-wal")
    assert wal.stat().st_size > 0
    with path.open("ab") as fh:  # the torn extension: part of one page
        fh.write(b"\x00" * (PAGE_SIZE // 3))
    assert path.stat().st_size % PAGE_SIZE

    check = noteward("check", "--vault", str(path), passphrase=PASSPHRASE)
    assert check.returncode == 0, check.stderr
    patients = noteward("patients", "--json", "--vault", str(path), passphrase=PASSPHRASE)
    assert patients.returncode == 0, patients.stderr
    assert "Torn Sample" in patients.stdout
    assert path.stat().st_size % PAGE_SIZE == 0


def test_a_file_cut_mid_page_without_a_log_is_still_refused(sample_vault: Path, tmp_path: Path) -> None:
    """No write-ahead log to repair from: the file is damaged, said so, and left as it is."""
    path = tmp_path / "cut.nwv"
    data = sample_vault.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    path.chmod(0o600)
    before = path.read_bytes()
    out = noteward("check", "--vault", str(path), passphrase=PASSPHRASE)
    assert out.returncode == 3
    assert "not a whole number of pages" in out.stderr
    assert path.read_bytes() == before
