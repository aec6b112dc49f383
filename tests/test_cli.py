"""The `noteward` command end to end in a subprocess: JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, REPO


def run(*args: str, env: dict | None = None, vault: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "NOTEWARD_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(REPO / "app"), **(env or {})}
    cmd = [sys.executable, "-m", "noteward.cli", *args]
    if vault is not None:
        cmd += ["--vault", str(vault)]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture
def filled(tmp_path: Path, synthea_dir: Path) -> Path:
    v = tmp_path / "cli.nwv"
    assert run("init", vault=v).returncode == 0
    r = run("import", str(synthea_dir), "--json", vault=v)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["counts"]["notes"]["imported"] == 1018 and report["committed"] is True
    return v


def test_patients_and_notes_json(filled: Path):
    r = run("patients", "--json", vault=filled)
    patients = json.loads(r.stdout)
    assert len(patients) == 9
    for key in ("id", "source_id", "name", "birth_date", "sex", "deceased", "note_count"):
        assert key in patients[0]
    small = next(p for p in patients if p["source_id"].startswith("63ee2253"))
    assert small["note_count"] == 15
    by_source = json.loads(run("notes", "--patient", small["source_id"], "--json", vault=filled).stdout)
    by_id = json.loads(run("notes", "--patient", small["id"], "--json", vault=filled).stdout)
    assert by_source == by_id and len(by_id) == 15
    assert {"id", "date", "type", "author", "text"} <= set(by_id[0])


@pytest.mark.parametrize(
    "args, env, code, message",
    [
        (("patients",), {"NOTEWARD_PASSPHRASE": "wrong"}, 3, "wrong passphrase or not a Noteward vault"),
        (("notes", "--patient", "nobody"), {}, 6, "Unknown patient"),
        (("frobnicate",), {}, 2, "invalid choice"),
    ],
)
def test_exit_codes(filled: Path, args, env, code, message):
    r = run(*args, env=env, vault=filled)
    assert r.returncode == code
    assert message in r.stderr and "Traceback" not in r.stderr


def test_strict_import_exit_4_changes_nothing(filled: Path, tmp_path: Path):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"resourceType": "Patient", "id": "zz"}\n{oops\n')
    r = run("import", str(bad), "--strict", vault=filled)
    assert r.returncode == 4 and "bad.ndjson" in r.stderr
    assert len(json.loads(run("patients", "--json", vault=filled).stdout)) == 9


def test_demo_without_display(tmp_path: Path):
    env = {"NOTEWARD_DATA_DIR": str(tmp_path / "data"), "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    r = run("demo", env=env)
    assert r.returncode == 0, r.stderr
    assert "No display: running the command-line demo" in r.stdout
    assert "Demo passphrase: noteward-demo" in r.stdout
    assert (tmp_path / "data" / "demo" / "demo.nwv").exists()
