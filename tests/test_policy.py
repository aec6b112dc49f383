"""Site policy (IT's locked settings): validated at start of the CLI and the desktop app.

A malformed or unreadable policy, an unknown key, a wrong type or an out-of-range value stops
the program with exit 2 and a message naming the file, the key and what is allowed: never a
traceback, never a silent fall-back to the defaults.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from noteward import settings
from tests.support.cli import noteward, python

REPO = Path(__file__).resolve().parents[1]

# (policy file content, expected exit code, fragments the message must hold)
ROWS = [
    pytest.param('{"autolock_minutes": 5}', 0, [], id="valid"),
    pytest.param("", 0, [], id="absent"),  # no file at all: no policy
    pytest.param('{"autolock_minutes": 5', 2, ["not valid JSON", "line 1"], id="bad-json"),
    pytest.param("[1, 2]", 2, ["JSON object"], id="not-object"),
    pytest.param('{"autolok_minutes": 5}', 2, ["autolok_minutes", "unknown key", "autolock_minutes"],
                 id="unknown-key"),
    pytest.param('{"autolock_minutes": "five"}', 2, ["autolock_minutes", "integer"], id="wrong-type"),
    pytest.param('{"autolock_minutes": true}', 2, ["autolock_minutes", "integer"], id="bool-for-int"),
    pytest.param('{"autolock_minutes": 0}', 2, ["autolock_minutes", "1 to 480"], id="below-range"),
    pytest.param('{"text_zoom_percent": 900}', 2, ["text_zoom_percent", "50 to 300"], id="above-range"),
    pytest.param('{"show_unsupported": "yes"}', 2, ["show_unsupported", "true or false"], id="bool-wrong"),
    pytest.param('{"schema_version": 1}', 2, ["schema_version", "unknown key"], id="schema-not-lockable"),
]


def _write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "policy.json"
    if content:
        path.write_text(content, encoding="utf-8")
    return path


def _check(proc, expected: int, fragments: list[str], path: Path) -> None:  # noqa: ANN001
    out = proc.stdout + proc.stderr
    assert proc.returncode == expected, out
    assert "Traceback" not in out
    if expected:
        assert str(path) in proc.stderr
        for fragment in fragments:
            assert fragment in proc.stderr, proc.stderr


@pytest.mark.parametrize("content, expected, fragments", ROWS)
def test_cli_validates_policy_at_start(content, expected, fragments, tmp_path: Path):
    path = _write(tmp_path, content)
    proc = noteward("--version", env={"NOTEWARD_POLICY_FILE": str(path)})
    _check(proc, expected, fragments, path)


@pytest.mark.parametrize("how", ["no-permission", "a-folder"])
def test_unreadable_policy_stops_the_cli(how: str, tmp_path: Path):
    path = _write(tmp_path, '{"autolock_minutes": 5}')
    if how == "no-permission":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        path.chmod(0)
    else:  # what root sees as unreadable too
        path.unlink()
        path.mkdir()
    proc = noteward("--version", env={"NOTEWARD_POLICY_FILE": str(path)})
    _check(proc, 2, ["cannot be read"], path)


APP_ROWS = [r for r in ROWS if r.id in ("bad-json", "unknown-key", "below-range")]


@pytest.mark.parametrize("content, expected, fragments", APP_ROWS)
def test_app_validates_policy_before_any_window(content, expected, fragments, tmp_path: Path):
    pytest.importorskip("PySide6")
    path = _write(tmp_path, content)
    proc = python(
        "import sys; from noteward.ui.app import main; sys.exit(main())",
        env={"NOTEWARD_POLICY_FILE": str(path), "QT_QPA_PLATFORM": "offscreen"},
        timeout=60,
    )
    _check(proc, expected, fragments, path)


def test_example_policy_validates():
    example = settings.resources_dir() / "policy.example.json"
    policy = settings.read_policy(example)
    assert policy and set(policy) <= set(settings.Settings.model_fields)


def test_readme_documents_every_policy_key():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Site policy", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))
    assert documented == settings.policy_keys()
    example = json.loads((settings.resources_dir() / "policy.example.json").read_text())
    assert set(example) <= documented


@pytest.mark.parametrize(
    "variable, value, fragments",
    [
        ("NOTEWARD_AUTOLOCK_MINUTES", "0", ["NOTEWARD_AUTOLOCK_MINUTES", "1 to 480"]),
        ("NOTEWARD_TEXT_ZOOM_PERCENT", "big", ["NOTEWARD_TEXT_ZOOM_PERCENT", "integer"]),
    ],
)
def test_a_bad_environment_variable_stops_the_cli_with_a_message(
    variable: str, value: str, fragments: list[str], tmp_path: Path
):
    """The same rule for NOTEWARD_* settings as for the policy: name it, say what is allowed."""
    proc = noteward("--version", env={variable: value})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr
