"""The packaging and install checks of `make dist` / `make dist-check`, on a small stand-in.

CI cannot build the real bundle (PyInstaller over torch, Qt and the models takes far longer
than its budget), so a plain folder stands for PyInstaller's output: a `noteward` launcher
that runs this checkout's code with the folder's own resources/ and models/, and a few real
.dist-info folders. Everything after it is the real thing: installer/package.py makes the
.deb (dpkg-deb), the .tar.gz, the SBOM (cyclonedx-py) and the signed SHA256SUMS, and
installer/dist_check.py installs the .deb with dpkg into a throw-away root (maintainer
scripts run), runs the installed command, checks verify-bundle and the SBOM, upgrades,
refuses a downgrade, removes and purges, checking the vault each time.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO

CYCLONEDX = Path(sys.executable).with_name("cyclonedx-py")
STAND_IN_DISTS = ["cryptography", "PyYAML", "platformdirs"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"nw_{name}", REPO / "installer" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _stand_in_venv(folder: Path) -> Path:
    """A venv holding exactly the stand-in's distributions, for cyclonedx-py to read (the
    project venv's 250 take it over a minute on two busy cores)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next(folder.glob("lib/python3*/site-packages"))
    for name in STAND_IN_DISTS:
        info = Path(str(md.distribution(name)._path))  # type: ignore[attr-defined]
        shutil.copytree(info, site / info.name)
    return folder / "bin" / "python"


def _stand_in(folder: Path) -> Path:
    folder.mkdir()
    exe = folder / "noteward"
    exe.write_text(
        "#!/bin/sh\n"
        "# stands for PyInstaller's executable: this checkout's code, the installed data\n"
        'here=$(dirname "$(readlink -f "$0")")\n'
        'export NOTEWARD_RESOURCES="$here/resources" NOTEWARD_MODELS="$here/models"\n'
        f'export PYTHONPATH="{REPO / "app"}"\n'
        f'exec "{sys.executable}" "{REPO / "installer/pyinstaller/noteward_entry.py"}" "$@"\n'
    )
    exe.chmod(0o755)
    internal = folder / "_internal"
    internal.mkdir()
    for name in STAND_IN_DISTS:
        info = Path(str(md.distribution(name)._path))  # type: ignore[attr-defined]
        shutil.copytree(info, internal / info.name)
    return folder


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (Debian/Ubuntu)")
def test_package_install_upgrade_remove(tmp_path: Path, monkeypatch, capsys):
    assert CYCLONEDX.exists(), "cyclonedx-bom is in requirements/dev.txt"
    package, dist_check = _load("package"), _load("dist_check")
    for var in ("NOTEWARD_SIGNING_KEY", "NOTEWARD_SIGNING_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NOTEWARD_SIGNING_KEY_PASSPHRASE", "throw-away release key")
    from noteward.bundle import keygen

    priv, pub = keygen(tmp_path / "keys", b"throw-away release key")
    dist = tmp_path / "dist"
    assert (
        package.main(
            [
                "build",
                "--bundle",
                str(_stand_in(tmp_path / "bundle")),
                "--out",
                str(dist),
                "--key",
                str(priv),
                "--cyclonedx",
                str(CYCLONEDX),
                "--env-python",
                str(_stand_in_venv(tmp_path / "venv")),
                "--work",
                str(tmp_path / "work"),
            ]
        )
        == 0
    )
    names = sorted(p.name for p in dist.iterdir())
    assert names == [
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "noteward-0.1.0-1-linux-x86_64.tar.gz",
        "noteward-0.1.0-1.cdx.json",
        "noteward_0.1.0-1_amd64.deb",
    ]

    info = subprocess.run(
        ["dpkg-deb", "--info", str(dist / "noteward_0.1.0-1_amd64.deb")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Package: noteward" in info and "Version: 0.1.0-1" in info and "libc6 (>= 2.36)" in info
    with tarfile.open(dist / "noteward-0.1.0-1-linux-x86_64.tar.gz") as tar:
        members = set(tar.getnames())
    for rel in (
        "noteward",
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "resources/licenses/notices.yaml",
        "models/manifest.json",
        "models/smollm2-135m-clinical-lora.gguf",
    ):
        assert f"noteward-0.1.0-1/{rel}" in members

    sbom = json.loads((dist / "noteward-0.1.0-1.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["metadata"]["component"]["name"] == "noteward"
    by_name = {c["name"]: c for c in sbom["components"]}
    assert by_name["cryptography"]["version"] == md.version("cryptography")
    assert by_name["cryptography"]["hashes"][0]["alg"] == "SHA-256"
    assert by_name["cryptography"].get("licenses")
    adapter = by_name["models/smollm2-135m-clinical-lora.gguf"]
    assert adapter["type"] == "machine-learning-model"
    assert (
        adapter["hashes"][0]["content"]
        == json.loads((REPO / "models/manifest.json").read_text())["models"][2]["adapter"]["sha256"]
    )
    assert "pytest" not in by_name  # in the venv, not in the bundle

    dist_check.run_check(dist, pub, tmp_path / "check", gui=True)
    out = capsys.readouterr().out
    for step in (
        "release: a changed file, an extra file and another key each fail",
        "installed: a changed file, an extra file and another key each fail",
        "SBOM matches",
        "SBOM: a changed model file is found",
        "unlock dialog visible",
        "downgrade refused: noteward: refusing to downgrade from 0.1.0-2 to 0.1.0-1",
        "upgraded 0.1.0-1 -> 0.1.0-2; vault kept",
        "removed and purged; vault untouched",
    ):
        assert step in out, out
    assert not (tmp_path / "check" / "root").exists()


def test_development_build_keeps_no_private_key(tmp_path: Path, monkeypatch):
    package = _load("package")
    for var in ("NOTEWARD_SIGNING_KEY", "NOTEWARD_SIGNING_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    dist = tmp_path / "dist"
    assert (
        package.main(
            [
                "build",
                "--bundle",
                str(_stand_in(tmp_path / "bundle")),
                "--out",
                str(dist),
                "--work",
                str(tmp_path / "work"),
            ]
        )
        == 0
    )
    assert (dist / "DEVELOPMENT-BUILD.txt").exists()
    assert (dist / "noteward-release.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    for f in list(dist.rglob("*")) + list((tmp_path / "work").rglob("*")):
        if f.is_file() and f.suffix not in (".deb", ".gz"):
            assert b"PRIVATE KEY" not in f.read_bytes(), f
    assert not any(os.scandir(tmp_path / "work"))
