"""A full disk in the middle of passwd, backup or erase: a real write failure (a child process
with RLIMIT_FSIZE, SIGXFSZ ignored, so writes past the limit fail with EFBIG as on a full
disk). Nothing may be half-done without saying so: a failed passwd leaves the vault whole
under the old passphrase, a failed backup leaves no backup and no backup audit record, and a
failed erase says whether the records were removed."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from noteward.core.errors import UnknownPatientError, VaultLockedError
from noteward.store import audit
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.store.conftest import add_patient, copy_vault, listing
from tests.support import sqlcipher_pages as sp
from tests.support.cli import REPO, child_env

NEW_PASSPHRASE = "a new passphrase for a full disk 9"


def _file_size_limit(limit: int) -> Callable[[], None]:
    def limit_writes() -> None:  # runs in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


def noteward_limited(limit: int, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`noteward ARGS` as `(ulimit -f ...; noteward ARGS)` would run it."""
    return subprocess.run(
        [sys.executable, "-m", "noteward.cli", *args],
        cwd=REPO,
        env=child_env({"NOTEWARD_PASSPHRASE": PASSPHRASE, **(env or {})}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(limit),  # noqa: PLW1509 - a plain rlimit, no threads yet
    )


@pytest.fixture(scope="module")
def big_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vault of a few hundred pages, so half its size is well past the pages an unlock
    touches (its audit and meta pages come first in the file)."""
    path = tmp_path_factory.mktemp("big") / "big.nwv"
    v = Vault.create(path, PASSPHRASE, busy_timeout_ms=2000)
    with v.transaction() as conn:
        add_patient(conn, "pt_alpha", "Alpha Sample",
                    [f"Alpha visit {i}: " + " ".join(f"w{i}x{j}" for j in range(300)) for i in range(120)])
        add_patient(conn, "pt_beta", "Beta Sample",
                    [f"Beta visit {i}: " + " ".join(f"b{i}y{j}" for j in range(300)) for i in range(60)])
    v.close()
    return path


@pytest.fixture
def big_copy(big_vault: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "vault" / "vault.nwv"
    dest.parent.mkdir()
    return copy_vault(big_vault, dest)


def _actions(path: Path, passphrase: str = PASSPHRASE) -> list[str]:
    v = Vault.open(path, passphrase, audit_unlock=False)
    try:
        return [e["action"] for e in reversed(audit.events(v.conn, 100_000))]
    finally:
        v.close()


def _assert_whole(path: Path, passphrase: str = PASSPHRASE) -> dict:
    report = Vault.verify_file(path, passphrase)
    assert report["ok"], report["problems"]
    # the independent reader authenticates every page under this passphrase
    assert len(sp.db_pages(path, passphrase)) == path.stat().st_size // sp.PAGE_SIZE
    return report


def test_passwd_on_a_full_disk_leaves_the_vault_whole_under_the_old_passphrase(
    big_copy: Path, tmp_path: Path
) -> None:
    before = _assert_whole(big_copy)["counts"]
    new = tmp_path / "new-passphrase.txt"
    new.write_text(NEW_PASSPHRASE + "\n")
    r = noteward_limited(big_copy.stat().st_size // 2, "passwd", "--vault", str(big_copy),
                         "--new-passphrase-file", str(new))
    assert r.returncode != 0, r.stdout
    assert "internal error" not in r.stderr, r.stderr
    assert "Passphrase changed" not in r.stdout
    assert "nothing was changed" in r.stderr and "old passphrase" in r.stderr, r.stderr
    after = _assert_whole(big_copy)["counts"]
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    with pytest.raises(VaultLockedError):
        Vault.open(big_copy, NEW_PASSPHRASE)
    assert "passwd" not in _actions(big_copy)
    assert listing(big_copy.parent) == ["vault.nwv", "vault.nwv.keys"], "no half-written copy is left behind"
    # and with room on the disk the same command works
    r = noteward_limited(resource.RLIM_INFINITY, "passwd", "--vault", str(big_copy),
                         "--new-passphrase-file", str(new))
    assert r.returncode == 0, r.stderr
    _assert_whole(big_copy, NEW_PASSPHRASE)


def test_backup_on_a_full_disk_writes_nothing_and_audits_nothing(big_copy: Path, tmp_path: Path) -> None:
    actions = _actions(big_copy)
    out_dir = tmp_path / "backups"
    out_dir.mkdir()
    out = out_dir / "backup.nwv"
    r = noteward_limited(big_copy.stat().st_size // 2, "backup", str(out), "--vault", str(big_copy))
    assert r.returncode != 0, r.stdout
    assert "internal error" not in r.stderr, r.stderr
    assert "disk" in r.stderr and "no backup was written" in r.stderr, r.stderr
    assert listing(out_dir) == [], "no partial backup is left behind"
    assert "backup" not in _actions(big_copy)[len(actions):], "a backup that was not written was audited"
    _assert_whole(big_copy)


@pytest.mark.parametrize(
    ("fraction", "commits"),
    [(0.5, False), (0.75, True)],
    ids=["erase-fails", "erase-commits-wipe-fails"],
)
def test_erase_on_a_full_disk_says_what_was_done(big_copy: Path, fraction: float, commits: bool) -> None:
    r = noteward_limited(int(big_copy.stat().st_size * fraction), "erase", "--patient", "pt_beta", "--yes",
                         "--vault", str(big_copy))
    assert "internal error" not in r.stderr, r.stderr
    assert r.returncode != 0, "the disk-full run was expected to fail somewhere"
    v = Vault.open(big_copy, PASSPHRASE, audit_unlock=False)
    try:
        try:
            v.patient("pt_beta")
            erased = False
        except UnknownPatientError:
            erased = True
    finally:
        v.close()
    assert erased == commits
    if erased:
        assert "were erased" in r.stderr and "disk" in r.stderr, r.stderr
        # the next unlock, with room on the disk, finishes the wipe
        r = noteward_limited(resource.RLIM_INFINITY, "patients", "--vault", str(big_copy))
        assert r.returncode == 0, r.stderr
        for label, page in sp.all_plaintext(big_copy, PASSPHRASE):
            assert b"Beta visit" not in page, f"erased text still on disk ({label})"
    else:
        assert "nothing was erased" in r.stderr and "disk" in r.stderr, r.stderr
    _assert_whole(big_copy)


def test_passwd_killed_at_any_point_leaves_one_whole_vault(big_vault: Path, tmp_path: Path) -> None:
    """SIGKILL during passwd: afterwards exactly one of the two passphrases opens the vault,
    and it is whole. (The kill points are spread over one measured run; the assertion holds
    wherever the kill lands.)"""
    import os
    import time

    new = tmp_path / "new-passphrase.txt"
    new.write_text(NEW_PASSPHRASE + "\n")

    def start(path: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "noteward.cli", "passwd", "--vault", str(path), "--new-passphrase-file", str(new)],
            cwd=REPO, env=child_env({"NOTEWARD_PASSPHRASE": PASSPHRASE}), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )

    probe = tmp_path / "probe" / "vault.nwv"
    probe.parent.mkdir()
    copy_vault(big_vault, probe)
    t0 = time.monotonic()
    assert start(probe).wait(timeout=300) == 0
    full = time.monotonic() - t0
    for i, fraction in enumerate((0.3, 0.5, 0.7, 0.85, 0.95)):
        path = tmp_path / f"run{i}" / "vault.nwv"
        path.parent.mkdir()
        copy_vault(big_vault, path)
        proc = start(path)
        time.sleep(full * fraction)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        opened = []
        for passphrase in (PASSPHRASE, NEW_PASSPHRASE):
            try:
                _assert_whole(path, passphrase)
                opened.append(passphrase)
            except VaultLockedError:
                pass
        assert len(opened) == 1, f"kill at {fraction:.0%}: opened with {len(opened)} passphrases"
