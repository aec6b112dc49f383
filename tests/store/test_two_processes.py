"""Two processes on one vault: a writer waits for the other's lock up to the busy timeout,
then gets "vault is busy" (VaultBusyError, exit 7); the file is never corrupted."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from noteward.core.errors import VaultBusyError
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE
from tests.support.cli import REPO, child_env, noteward

# A second process that takes the vault's write lock, writes a row, and holds the
# transaction open until told (a line on stdin) to commit.
HOLDER = """
import sys
from noteward.store.vault import Vault
v = Vault.open(sys.argv[1], sys.stdin.readline().rstrip("\\n"), audit_unlock=False)
with v.transaction() as conn:
    conn.execute("INSERT INTO meta(key, value) VALUES ('held_by_other_process', 'yes')")
    print("holding", flush=True)
    sys.stdin.readline()
v.close()
print("released", flush=True)
"""


# A second process that merely has the vault open (as the desktop app does between actions).
IDLE = """
import sys
from noteward.store.vault import Vault
v = Vault.open(sys.argv[1], sys.stdin.readline().rstrip("\\n"), audit_unlock=False)
v.patients()
print("holding", flush=True)
sys.stdin.readline()
v.close()
print("released", flush=True)
"""


class Holder:
    def __init__(self, path: Path, script: str = HOLDER) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            cwd=REPO, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(PASSPHRASE + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.strip() == "holding", self.proc.stderr.read() if self.proc.stderr else line

    def release(self) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        assert self.proc.wait(timeout=60) == 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)


@pytest.fixture
def holder(sample_copy: Path) -> Iterator[Holder]:
    h = Holder(sample_copy)
    yield h
    h.stop()


def _integrity(path: Path) -> dict:
    report = Vault.verify_file(path, PASSPHRASE)
    assert report["integrity"] == "ok" and report["ok"], report["problems"]
    return report


def test_write_gets_busy_error_then_file_is_intact(sample_copy: Path) -> None:
    v = Vault.open(sample_copy, PASSPHRASE, busy_timeout_ms=300)
    try:
        h = Holder(sample_copy)
        try:
            with pytest.raises(VaultBusyError, match="vault is busy"):
                with v.transaction() as conn:
                    conn.execute("INSERT INTO meta(key, value) VALUES ('loser', 'x')")
            # reading still works while the other process writes (WAL)
            assert [p.id for p in v.patients()] == ["pt_alpha", "pt_beta"]
        finally:
            h.release()
        assert v.meta("held_by_other_process") == "yes"
        assert v.meta("loser") is None
        with v.transaction() as conn:  # the lock is free again
            conn.execute("INSERT INTO meta(key, value) VALUES ('after', 'x')")
    finally:
        v.close()
    _integrity(sample_copy)


def test_write_waits_for_the_lock_within_busy_timeout(sample_copy: Path) -> None:
    v = Vault.open(sample_copy, PASSPHRASE, busy_timeout_ms=60_000)
    h = Holder(sample_copy)
    outcome: list[object] = []

    def write() -> None:
        try:
            with v.transaction() as conn:
                conn.execute("INSERT INTO meta(key, value) VALUES ('waited', 'x')")
            outcome.append("committed")
        except Exception as exc:  # reported below
            outcome.append(exc)

    t = threading.Thread(target=write)
    try:
        t.start()
        t.join(1.0)
        assert t.is_alive() and not outcome, "the write should be waiting for the lock"
        h.release()
        t.join(60)
        assert outcome == ["committed"]
        assert v.meta("waited") == "x" and v.meta("held_by_other_process") == "yes"
    finally:
        h.stop()
        t.join(60)
        v.close()
    _integrity(sample_copy)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["erase", "--patient", "pt_beta", "--yes"], id="erase"),
        pytest.param(["patients"], id="patients"),
    ],
)
def test_cli_exit_7_when_busy(sample_copy: Path, holder: Holder, argv: list[str]) -> None:
    r = noteward(*argv, "--vault", str(sample_copy), passphrase=PASSPHRASE,
                 env={"NOTEWARD_BUSY_TIMEOUT_MS": "300"})
    assert r.returncode == 7, r.stdout + r.stderr
    assert "vault is busy" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    holder.release()
    report = _integrity(sample_copy)
    assert report["counts"]["patients"] == 2  # the busy erase changed nothing
    r = noteward("check", "--vault", str(sample_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0 and "Integrity: ok" in r.stdout


def test_passwd_while_another_process_has_the_vault_open(sample_copy: Path) -> None:
    h = Holder(sample_copy, IDLE)
    try:
        r = noteward("passwd", "--vault", str(sample_copy), passphrase=PASSPHRASE,
                     env={"NOTEWARD_NEW_PASSPHRASE": "another passphrase", "NOTEWARD_BUSY_TIMEOUT_MS": "300"})
        assert r.returncode == 7, r.stdout + r.stderr
        assert "vault is busy" in r.stderr and "nothing was changed" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        h.release()
    report = _integrity(sample_copy)  # the old passphrase still opens it, intact
    assert report["counts"]["patients"] == 2


def test_failed_unlocks_are_not_lost_when_the_next_unlock_is_busy(sample_copy: Path) -> None:
    from noteward.store import audit

    for _ in range(2):
        assert noteward("patients", "--vault", str(sample_copy), passphrase="wrong").returncode == 3
    h = Holder(sample_copy)
    try:
        r = noteward("patients", "--vault", str(sample_copy), passphrase=PASSPHRASE,
                     env={"NOTEWARD_BUSY_TIMEOUT_MS": "300"})
        assert r.returncode == 7, r.stderr
    finally:
        h.release()
    v = Vault.open(sample_copy, PASSPHRASE)
    try:
        failed = [e for e in audit.events(v.conn) if e["action"] == "failed_unlock"]
        assert [e["counts"] for e in failed] == [{"attempts": 2}]
    finally:
        v.close()
