"""Package a built bundle for IT: .deb, .tar.gz, SHA256SUMS, its signature and the SBOM.

    python installer/package.py build --bundle DIR --out dist [--revision N]
        [--key KEYFILE] [--cyclonedx PATH --env-python PATH] [--work DIR]

``--bundle`` is PyInstaller's one-folder output (``noteward`` and ``_internal/``). It is
assembled with ``resources/`` and ``models/`` into ``/opt/noteward``, whose every file is
listed in a signed ``/opt/noteward/SHA256SUMS`` (what ``noteward verify-bundle`` checks
once installed), then packaged twice:

- ``noteward_VERSION-REV_amd64.deb``: /opt/noteward, /usr/bin/noteward, a desktop entry and
  the icon; maintainer scripts refuse a downgrade and never touch users' vaults;
- ``noteward-VERSION-REV-linux-x86_64.tar.gz``: the same /opt/noteward folder.

Beside them ``noteward-VERSION-REV.cdx.json`` (CycloneDX SBOM), ``SHA256SUMS`` over the
three and ``SHA256SUMS.sig``. The signing key comes from ``--key`` (passphrase-protected
PEM), $NOTEWARD_SIGNING_KEY or $NOTEWARD_SIGNING_KEY_FILE; with none, a one-off key signs,
its private half is never written and ``DEVELOPMENT-BUILD.txt`` says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "app"))
sys.path.insert(0, str(REPO / "installer"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sbom import make_sbom  # noqa: E402

from noteward import __version__  # noqa: E402
from noteward.bundle import load_signing_key, public_pem, sign_tree  # noqa: E402

PREFIX = "opt/noteward"
# glibc 2.36 is the build machine's (Debian 12): the bundle's own libraries need no newer one.
# Qt's xcb platform plugin loads these from the system (the PySide6 wheel does not carry them).
DEPENDS = (
    "libc6 (>= 2.36), libgl1, libegl1, libfontconfig1, libfreetype6, libxkbcommon0, "
    "libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-shape0, "
    "libdbus-1-3, libglib2.0-0"
)
# Data the app never reads, taken out of PyInstaller's output (hooks collect whole packages):
# wordfreq's lists for other languages (noteward.llm.lexicon reads English only): 55 MB.
PRUNE = [("_internal/wordfreq/data/*", ("*_en.msgpack.gz",))]
SOURCE_DATE_EPOCH = "1700000000"  # fixed archive dates: the same tree gives the same tarball

DESKTOP = """[Desktop Entry]
Type=Application
Name=Noteward
GenericName=Clinical notes assistant
Comment=Encrypted patient notes with summaries checked against their sources
Exec=/usr/bin/noteward
Icon=noteward
Terminal=false
Categories=Office;Science;MedicalSoftware;
StartupWMClass=noteward
"""

# Maintainer scripts: POSIX sh, paths under $DPKG_ROOT (so `dpkg --root R
# --force-script-chrootless` runs them for a throw-away root without a chroot).
PREINST = """#!/bin/sh
# A downgrade is refused: a vault opened by the newer Noteward may have been migrated to a
# schema the older one cannot read (it would refuse the vault, not damage it).
set -e
NEW="@VERSION@"
case "$1" in
  upgrade|install)
    if [ -n "$2" ] && dpkg --compare-versions "$2" gt "$NEW"; then
      echo "noteward: refusing to downgrade from $2 to $NEW: vaults opened by $2 may use a newer" >&2
      echo "noteward: format that $NEW cannot open. Nothing was changed. To go back anyway, remove" >&2
      echo "noteward: the package first (dpkg -r noteward; vaults are kept), then install $NEW." >&2
      exit 1
    fi ;;
esac
exit 0
"""
POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "$DPKG_ROOT" ]; then
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q /usr/share/applications || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
fi
exit 0
"""
# Nothing is deleted here beyond the files dpkg installed: vaults live in each user's home
# (~/.local/share/noteward), caches in ~/.cache/noteward and IT's policy in /etc/noteward;
# removal and purge leave all three alone.
POSTRM = """#!/bin/sh
set -e
if [ "$1" = purge ]; then
  echo "noteward: purged. Users' vaults (~/.local/share/noteward), model caches" >&2
  echo "noteward: (~/.cache/noteward) and /etc/noteward were left in place." >&2
fi
exit 0
"""


def run(*cmd: str, **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def deb_version(revision: str) -> str:
    return f"{__version__}-{revision}"


def assemble(bundle: Path, stage: Path, key: Ed25519PrivateKey) -> Path:
    """stage/opt/noteward: the bundle, resources/ and the shipped models/, signed."""
    if stage.exists():
        shutil.rmtree(stage)
    top = stage / PREFIX
    shutil.copytree(bundle, top, symlinks=True)
    for pattern, keep in PRUNE:
        for f in top.glob(pattern):
            if f.is_file() and not any(f.match(k) for k in keep):
                f.unlink()
    shutil.copytree(REPO / "resources", top / "resources")
    (top / "models").mkdir()
    shipped = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "models"], check=True, capture_output=True, text=True
    ).stdout.split()
    for rel in shipped or [
        p.relative_to(REPO).as_posix() for p in (REPO / "models").rglob("*") if p.is_file()
    ]:
        dest = top / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    sign_tree(top, key)
    return top


def debian_files(stage: Path, version: str) -> None:
    """DEBIAN/ control and scripts, /usr/bin link, desktop entry and icon."""
    (stage / "usr/bin").mkdir(parents=True, exist_ok=True)
    os.symlink(f"/{PREFIX}/noteward", stage / "usr/bin/noteward")
    apps = stage / "usr/share/applications"
    apps.mkdir(parents=True)
    (apps / "noteward.desktop").write_text(DESKTOP)
    icons = stage / "usr/share/icons/hicolor/scalable/apps"
    icons.mkdir(parents=True)
    shutil.copy2(REPO / "resources/ui/noteward.svg", icons / "noteward.svg")
    doc = stage / "usr/share/doc/noteward"
    doc.mkdir(parents=True)
    shutil.copy2(REPO / "resources/licenses/notices.yaml", doc / "notices.yaml")
    shutil.copy2(REPO / "resources/policy.example.json", doc / "policy.example.json")
    size_kb = (
        sum(f.stat().st_size for f in stage.rglob("*") if f.is_file() and not f.is_symlink())
        // 1024
    )
    control = stage / "DEBIAN"
    control.mkdir()
    (control / "control").write_text(
        f"Package: noteward\nVersion: {version}\nArchitecture: amd64\nSection: science\n"
        f"Priority: optional\nInstalled-Size: {size_kb}\nDepends: {DEPENDS}\n"
        "Maintainer: Noteward release team <noteward@localhost>\n"
        "Description: on-premise clinical notes assistant\n"
        " Encrypted local vault of patient notes, summaries checked against their\n"
        " sources by a small language model on this computer, de-identification.\n"
        " Self-contained: its own Python, Qt, llama.cpp (x86-64-v3 baseline) and models.\n"
    )
    for name, text in (
        ("preinst", PREINST.replace("@VERSION@", version)),
        ("postinst", POSTINST),
        ("postrm", POSTRM),
    ):
        (control / name).write_text(text)
        (control / name).chmod(0o755)


def build_deb(stage: Path, out: Path, version: str) -> Path:
    deb = out / f"noteward_{version}_amd64.deb"
    run(
        "dpkg-deb",
        "--root-owner-group",
        "-Zgzip",
        "-z6",
        "--build",
        str(stage),
        str(deb),
        stdout=subprocess.DEVNULL,
        env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
    )
    return deb


def build_tarball(top: Path, out: Path, version: str) -> Path:
    tgz = out / f"noteward-{version}-linux-x86_64.tar.gz"
    run(
        "tar",
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        f"--mtime=@{SOURCE_DATE_EPOCH}",
        "-C",
        str(top.parent),
        "-czf",
        str(tgz),
        "--transform",
        f"s,^{top.name},noteward-{version},",
        top.name,
    )
    return tgz


def build(args: argparse.Namespace) -> int:
    bundle, out = Path(args.bundle), Path(args.out)
    work = Path(args.work or REPO / "build" / "dist" / "pkg")
    version = deb_version(args.revision)
    key = load_signing_key(Path(args.key) if args.key else None)
    development = key is None
    if key is None:
        key = Ed25519PrivateKey.generate()  # one-off: the private half is never written
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("noteward*")) + [
        out / n for n in ("SHA256SUMS", "SHA256SUMS.sig", "DEVELOPMENT-BUILD.txt")
    ]:
        if old.is_file():
            old.unlink()
    stage = work / "deb"
    top = assemble(bundle, stage, key)
    debian_files(stage, version)
    artefacts = [build_deb(stage, out, version), build_tarball(top, out, version)]
    if args.cyclonedx:
        sbom = make_sbom(
            Path(args.cyclonedx), Path(args.env_python or sys.executable), top, version
        )
        path = out / f"noteward-{version}.cdx.json"
        path.write_text(json.dumps(sbom, indent=1, sort_keys=True) + "\n")
        artefacts.append(path)
    if development:
        (out / "noteward-release.pub").write_bytes(public_pem(key))
        (out / "DEVELOPMENT-BUILD.txt").write_text(
            "No release key was configured: a one-off key signed this build and was discarded.\n"
            "noteward-release.pub here is its public half, good only for testing. Do not deploy.\n"
        )
    signed = sign_tree(out, key)
    shutil.rmtree(work / "deb")
    for a in artefacts:
        print(f"{a}  {a.stat().st_size / 1e6:.1f} MB")
    print(
        f"signed {signed} files in {out}/SHA256SUMS" + (" (DEVELOPMENT key)" if development else "")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="installer/package.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="assemble, package, describe and sign")
    b.add_argument("--bundle", required=True)
    b.add_argument("--out", required=True)
    b.add_argument(
        "--revision", default="1", help="Debian revision (a newer build gets a higher one)"
    )
    b.add_argument("--key", help="passphrase-protected Ed25519 PEM (else the environment)")
    b.add_argument("--cyclonedx", help="the cyclonedx-py program (no SBOM without it)")
    b.add_argument("--env-python", help="the Python of the venv the bundle was built from")
    b.add_argument("--work", help="scratch folder (default build/dist/pkg)")
    args = parser.parse_args(argv)
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
