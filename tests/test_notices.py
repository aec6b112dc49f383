"""Licence notices of what Noteward bundles: kept as data, versions read from the installed
packages, every runtime dependency covered, and `noteward --version` points to them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import noteward

REPO = Path(__file__).resolve().parents[1]


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0])
    return names


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_requirement_has_a_notice():
    from noteward.about import load_notices

    covered = {_norm(d) for n in load_notices() for d in n.distributions}
    missing = sorted(n for n in _requirement_names(REPO / "requirements" / "base.txt")
                     if _norm(n) not in covered)
    assert not missing, f"add a notice to resources/licenses/notices.yaml for: {missing}"


def test_versions_come_from_the_installed_packages():
    import importlib.metadata as md

    from noteward.about import load_notices

    notices = load_notices()
    torch = next(n for n in notices if "torch" in n.distributions)
    assert torch.versions["torch"] == md.version("torch")
    text = (REPO / "resources" / "licenses" / "notices.yaml").read_text(encoding="utf-8")
    assert md.version("torch") not in text  # never hand-typed


def test_version_points_to_the_notices():
    proc = noteward("--version")
    assert proc.returncode == 0, proc.stderr
    assert "Licence notices:" in proc.stdout
    assert "notices.yaml" in proc.stdout
