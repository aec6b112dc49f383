"""A vault the user may read but not write (a read-only file, or a file in a read-only
folder): commands that only read work, commands that write say the vault is read-only, and
neither is counted as a failed unlock.

Root ignores file modes, and CI runs as root: there the command runs as an unprivileged
user (setpriv to nobody) on files that user owns, or the test would prove nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from noteward.store.keys import key_file_path
from tests.conftest import PASSPHRASE
from tests.store.conftest import copy_vault, listing, sha256
from tests.support.cli import REPO, child_env

NOBODY = 65534


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes cannot be tested")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's root-only tmp tree, so the unprivileged user can reach it."""
    d = Path(tempfile.mkdtemp(prefix="noteward-ro-"))
    d.chmod(0o755)
    yield d
    for p in d.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(d)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = child_env({
        "NOTEWARD_PASSPHRASE": PASSPHRASE, "NOTEWARD_NEW_PASSPHRASE": "new passphrase 12",
        # the test's own policy path sits in root's private temp folder, which an unreadable
        # policy now stops on; this user has no site policy installed
        "NOTEWARD_POLICY_FILE": "/nonexistent/noteward/policy.json",
    })
    return subprocess.run(
        [*_as_user(), sys.executable, "-m", "noteward.cli", *args],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )


def _setup(sample_vault: Path, shared_dir: Path, *, file_mode: int, folder_mode: int) -> Path:
    folder = shared_dir / "vault"
    folder.mkdir()
    path = folder / "vault.nwv"
    copy_vault(sample_vault, path)
    _own(folder)
    _own(path)
    _own(key_file_path(path))
    path.chmod(file_mode)
    folder.chmod(folder_mode)
    return path


@pytest.mark.parametrize(
    ("file_mode", "folder_mode", "what"),
    [(0o400, 0o700, "file"), (0o600, 0o500, "folder")],
    ids=["read-only-file", "read-only-folder"],
)
def test_read_only_vault(sample_vault: Path, shared_dir: Path, file_mode: int, folder_mode: int, what: str) -> None:
    path = _setup(sample_vault, shared_dir, file_mode=file_mode, folder_mode=folder_mode)
    digest = sha256(path)
    r = _run("patients", "--json", "--vault", str(path))
    assert r.returncode == 0, r.stderr
    assert "Alpha Sample" in r.stdout
    r = _run("check", "--vault", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Integrity: ok" in r.stdout
    for argv in (["erase", "--patient", "pt_beta", "--yes"], ["passwd"]):
        r = _run(*argv, "--vault", str(path))
        assert r.returncode != 0
        assert "read-only" in r.stderr and what in r.stderr, r.stderr
        assert "damaged" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sha256(path) == digest
    assert listing(path.parent) == ["vault.nwv", "vault.nwv.keys"], "no failed-unlock counter, no stray files"
