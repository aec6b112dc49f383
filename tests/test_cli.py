"""The `noteward` command end to end in a subprocess: JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import re
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
    # the summary reads as `summarize` prints it: every sentence with its source's date
    lines = [ln for ln in r.stdout.split("Summary of", 1)[1].splitlines() if ln.startswith("  - ")]
    assert lines and all(re.match(r"  - \[\d{4}-\d{2}-\d{2}\] ", ln) for ln in lines), lines


def _all_parsers(parser):  # noqa: ANN001, ANN202
    import argparse

    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _all_parsers(child)


def test_an_option_prefix_is_not_taken_for_a_longer_option(tmp_path: Path):
    """`--passphrase X` was silently read as `--passphrase-file X`."""
    from noteward.cli import build_parser

    parser, _ = build_parser()
    parsers = list(_all_parsers(parser))
    assert len(parsers) > 20
    assert [p.prog for p in parsers if p.allow_abbrev] == []
    r = run("patients", "--passphrase", "secret", vault=tmp_path / "v.nwv")
    assert r.returncode == 2
    assert "unrecognized arguments: --passphrase" in r.stderr
    assert "secret" not in r.stderr


def test_version_names_noteward_python_and_the_default_model_without_qt():
    from noteward import __version__
    from noteward.llm.manifest import load_manifest

    r = run("--version")
    assert r.returncode == 0, r.stderr
    m = load_manifest()
    entry = m.get(m.default)
    assert f"noteward {__version__}" in r.stdout
    assert f"Python {sys.version.split()[0]}" in r.stdout
    assert entry.id in r.stdout and entry.sha256[:12] in r.stdout
    probe = "import sys; from noteward import cli; rc = cli.main(['--version']); " \
            "print('QT', any(m.startswith('PySide6') for m in sys.modules), rc)"
    from tests.support.cli import python

    out = python(probe)
    assert out.returncode == 0 and out.stdout.strip().endswith("QT False 0"), out.stderr
    # -v stays --verbose
    from noteward.cli import build_parser

    parser, _ = build_parser()
    assert parser.parse_args(["-v", "patients"]).verbose is True


def _with_core_limit():  # noqa: ANN202
    """preexec_fn: let the child write core files (soft limit = hard limit), so the test
    shows the app lowering it rather than an inherited 0."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


@pytest.mark.parametrize(
    "entry",
    [
        "from noteward import cli; rc = cli.main(['--version'])",
        "from noteward.ui import app; rc = app.main()",  # no display: returns instead of aborting
    ],
    ids=["cli", "gui"],
)
def test_core_files_are_disabled_at_start(tmp_path: Path, entry: str):
    import resource

    from tests.support.cli import child_env

    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("the hard core-file limit is already 0 here; the test could not fail")
    env = child_env()
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(var, None)
    code = entry + "; import resource; print('LIMIT', resource.getrlimit(resource.RLIMIT_CORE), rc)"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, preexec_fn=_with_core_limit, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-500:])
    assert "LIMIT (0, 0)" in r.stdout


def test_gui_without_a_display_says_so_and_exits_2(tmp_path: Path):
    from tests.support.cli import child_env

    env = child_env({"NOTEWARD_DATA_DIR": str(tmp_path / "data")})
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(var, None)
    for args in ([], ["gui"]):
        r = subprocess.run(
            [sys.executable, "-m", "noteward.cli", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            preexec_fn=lambda: __import__("resource").setrlimit(
                __import__("resource").RLIMIT_CORE, (0, 0)),  # no core file even before the fix
        )
        assert r.returncode == 2, (args, r.returncode, r.stderr[-500:])
        assert "No display" in r.stderr and "DISPLAY" in r.stderr
        assert "Traceback" not in r.stderr
    # an X display that is not there is not a display either
    env["DISPLAY"] = ":97"
    r = subprocess.run(
        [sys.executable, "-m", "noteward.cli", "gui"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_CORE, (0, 0)),
    )
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    # which message depends on the machine: libraries are checked before the display answers
    assert "DISPLAY=':97'" in r.stderr or "sudo apt-get install -y" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_missing_x_libraries_are_named_with_the_apt_command():
    """A made-up library stands in for a missing one: whether the real ones are missing
    depends on the machine the test runs on."""
    from noteward.ui import display

    table = {**display.XCB_LIBRARIES, "libxcb-notthere-test.so.0": "libxcb-notthere0"}
    missing = display.missing_libraries(table)
    assert "libxcb-notthere0" in missing and set(missing) <= set(table.values())
    problem = display.check_gui({"DISPLAY": ":0"}, table)
    assert problem is not None and problem.kind == "libraries"
    apt_line = next(ln for ln in problem.message.splitlines() if "apt-get" in ln)
    assert apt_line.split() == ["sudo", "apt-get", "install", "-y", *missing]
    # with every library there, an X display nobody answers on is named
    problem = display.check_gui({"DISPLAY": ":97"}, {})
    assert problem is not None and problem.kind == "connection" and "DISPLAY=':97'" in problem.message
    # offscreen needs neither a display nor the X libraries
    assert display.gui_problem({"QT_QPA_PLATFORM": "offscreen"}, table) is None
    assert display.check_gui({}, table).kind == "no-display"  # type: ignore[union-attr]


def test_bench_summarize_without_shared_data_names_the_folder(tmp_path: Path):
    missing = tmp_path / "no-shared-data"
    r = run("bench", "summarize", "--repeat", "1", env={"NOTEWARD_SHARED_DATA": str(missing)})
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "internal error" not in r.stderr
    assert str(missing / "synthea_fhir") in r.stderr and "NOTEWARD_SHARED_DATA" in r.stderr
