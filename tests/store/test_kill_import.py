"""An import is one transaction: killed with SIGKILL while rows are inside it, the vault
opens, passes integrity checks and holds none of that import; killed right after its
commit, the vault holds all of it. Uses the importer's test hook
(NOTEWARD_TEST_KILL_AFTER_ROWS / NOTEWARD_TEST_KILL_AFTER_COMMIT), not a sleep."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from noteward.store import audit
from noteward.store.vault import Vault
from tests.conftest import PASSPHRASE, require_shared
from tests.store.conftest import copy_vault
from tests.support.cli import noteward

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

TABLES = ("patients", "encounters", "notes", "facts", "chunks", "chunks_fts", "imports", "audit")


def _state(v: Vault) -> dict[str, Any]:
    out: dict[str, Any] = {
        t: v.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES
    }
    out["imports_ids"] = sorted(r[0] for r in v.conn.execute("SELECT id FROM imports"))
    out["audit_actions"] = [r[0] for r in v.conn.execute("SELECT action FROM audit ORDER BY seq")]
    out["note_hashes"] = sorted(r[0] for r in v.conn.execute("SELECT content_hash FROM notes"))
    return out


def _healthy(path: Path) -> dict[str, Any]:
    """Open the vault after a crash: integrity, cipher, FTS and audit checks all pass."""
    v = Vault.open(path, PASSPHRASE, audit_unlock=False)
    try:
        assert [r[0] for r in v.conn.execute("PRAGMA integrity_check")] == ["ok"]
        assert v.conn.execute("PRAGMA cipher_integrity_check").fetchall() == []
        v.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        assert audit.verify(v.conn) == []
        assert v.check()["ok"]
        return _state(v)
    finally:
        v.close()


@pytest.fixture(scope="module")
def synthea() -> Path:
    return require_shared("synthea_fhir")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A vault holding one earlier, committed import (two text notes)."""
    from noteward.ingest.importer import import_paths

    d = tmp_path_factory.mktemp("kill-baseline")
    notes = d / "notes" / "Earlier Patient"
    notes.mkdir(parents=True)
    for i in range(2):
        (notes / f"2023-05-0{i + 1}.txt").write_text(f"Earlier committed note number {i}.\n")
    path = d / "baseline.nwv"
    v = Vault.create(path, PASSPHRASE)
    try:
        rep = import_paths(v, [notes.parent])
        assert rep.counts["notes"]["imported"] == 2
    finally:
        v.close()
    return path, _healthy(path)


@pytest.fixture(scope="module")
def reference(synthea: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a complete import of the Synthea data adds, and how many rows its
    transaction writes (the unit of the kill hook)."""
    from noteward.ingest.importer import import_paths

    path = tmp_path_factory.mktemp("kill-reference") / "ref.nwv"
    v = Vault.create(path, PASSPHRASE)
    try:
        rep = import_paths(v, [synthea])
        state = _state(v)
    finally:
        v.close()
    c = rep.counts
    return {
        "state": state,
        "patients": c["patients"]["imported"],
        "encounters": c["encounters"]["imported"],
        "notes": c["notes"]["imported"],
        "rows": sum(k["imported"] for k in c.values()),
    }


@pytest.fixture
def vault_copy(baseline: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    src, _ = baseline
    dest = tmp_path / "vault" / "v.nwv"
    dest.parent.mkdir()
    return copy_vault(src, dest)


def _kill_points() -> list[Any]:
    return [
        pytest.param(lambda r: 1, id="first-row"),
        pytest.param(lambda r: r["patients"] + r["encounters"] + 1, id="first-note"),
        pytest.param(lambda r: r["patients"] + r["encounters"] + r["notes"] // 2, id="mid-notes"),
        pytest.param(lambda r: r["rows"], id="last-row-before-commit"),
    ]


@pytest.mark.parametrize("kill_at", _kill_points())
def test_killed_import_leaves_nothing(vault_copy: Path, synthea: Path, baseline, reference, kill_at) -> None:
    n = kill_at(reference)
    assert 1 <= n <= reference["rows"]
    r = noteward("import", str(synthea), "--vault", str(vault_copy), passphrase=PASSPHRASE,
                 env={"NOTEWARD_TEST_KILL_AFTER_ROWS": str(n)})
    assert r.returncode == -signal.SIGKILL, f"the import was not killed: {r.returncode} {r.stderr}"
    state = _healthy(vault_copy)
    base = dict(baseline[1])
    # The command unlocked the vault (one committed 'unlock' audit event) before importing.
    assert state.pop("audit_actions") == base.pop("audit_actions") + ["unlock"]
    assert state.pop("audit") == base.pop("audit") + 1
    assert state == base, "the killed import left rows behind"


def test_import_after_a_kill_completes(vault_copy: Path, synthea: Path, baseline, reference) -> None:
    n = reference["patients"] + reference["encounters"] + reference["notes"] // 2
    r = noteward("import", str(synthea), "--vault", str(vault_copy), passphrase=PASSPHRASE,
                 env={"NOTEWARD_TEST_KILL_AFTER_ROWS": str(n)})
    assert r.returncode == -signal.SIGKILL
    r = noteward("import", str(synthea), "--json", "--vault", str(vault_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["notes"]["imported"] == reference["notes"]
    state = _healthy(vault_copy)
    base = baseline[1]
    for t in ("patients", "encounters", "notes", "facts", "chunks", "chunks_fts", "imports"):
        assert state[t] == base[t] + reference["state"][t], t


def test_import_killed_right_after_commit_survives(vault_copy: Path, synthea: Path, baseline, reference) -> None:
    r = noteward("import", str(synthea), "--vault", str(vault_copy), passphrase=PASSPHRASE,
                 env={"NOTEWARD_TEST_KILL_AFTER_COMMIT": "1"})
    assert r.returncode == -signal.SIGKILL, f"the import was not killed: {r.returncode} {r.stderr}"
    assert Path(str(vault_copy) + "-wal").exists(), "killed before checkpointing: the commit lives in the WAL"
    state = _healthy(vault_copy)
    base = baseline[1]
    for t in ("patients", "encounters", "notes", "facts", "chunks", "chunks_fts", "imports"):
        assert state[t] == base[t] + reference["state"][t], t
    assert sorted(base["note_hashes"] + reference["state"]["note_hashes"]) == state["note_hashes"]
    v = Vault.open(vault_copy, PASSPHRASE)
    try:
        actions = [e["action"] for e in reversed(audit.events(v.conn))]
        assert actions.count("import") == 2
    finally:
        v.close()
    # the survived import is complete: importing the same files again adds nothing
    r = noteward("import", str(synthea), "--json", "--vault", str(vault_copy), passphrase=PASSPHRASE)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["notes"]["imported"] == 0
