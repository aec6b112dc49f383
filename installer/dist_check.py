"""`make dist-check`: install the built .deb for real into a throw-away root and use it.

    python installer/dist_check.py DIST [--public-key PUB] [--work DIR] [--no-gui]

Steps (each prints one line; the first failure stops it with exit 1):

1. the release folder verifies with the standard tools (``openssl pkeyutl -verify`` on
   SHA256SUMS.sig, ``sha256sum --check``) and with ``noteward.bundle.verify_tree``; a
   changed file, an extra file and another key each fail;
2. ``dpkg --root R --force-script-chrootless`` installs the .deb into an empty root R (the
   maintainer scripts run, with $DPKG_ROOT=R; ``--force-depends`` because R's package
   database is empty, so no library dependency can be seen as installed);
3. the installed ``noteward --version``, ``init`` and ``check`` on a fresh vault in R's home,
   ``verify-bundle`` (then a changed file, an extra file and another key each fail), the
   SBOM against the installed files and distributions, hashes included, and the desktop
   client offscreen to its unlock dialog;
4. an upgrade to a newer build (the same bundle with the next Debian revision): the vault
   is kept and opens (migrations run at open); a downgrade back is refused with a message;
5. ``dpkg --remove`` then ``--purge``: /opt/noteward is gone, the vault is byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "app"))
sys.path.insert(0, str(REPO / "installer"))

from sbom import check_sbom  # noqa: E402

from noteward.bundle import SIG, SUMS, load_public_key, sha256_file, verify_tree  # noqa: E402

PASSPHRASE = "dist-check passphrase, thrown away"


class CheckFailed(RuntimeError):
    pass


_last = [time.monotonic()]


def say(step: str, detail: str = "") -> None:
    now = time.monotonic()
    print(
        f"ok  {step}" + (f": {detail}" if detail else "") + f"  [{now - _last[0]:.1f} s]",
        flush=True,
    )
    _last[0] = now


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def sh(
    *cmd: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


# ---------------------------------------------------------------------- the release


def check_release(dist: Path, pub: Path, other_pub: Path) -> None:
    r = sh(
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        pub,
        "-rawin",
        "-in",
        dist / SUMS,
        "-sigfile",
        dist / SIG,
    )
    expect(
        r.returncode == 0 and "Signature Verified Successfully" in r.stdout,
        f"openssl did not verify {SUMS}.sig: {r.stdout}{r.stderr}",
    )
    r = sh("sha256sum", "--check", "--strict", SUMS, cwd=dist)
    expect(r.returncode == 0, f"sha256sum --check failed: {r.stdout}{r.stderr}")
    say(
        "release signature (openssl pkeyutl) and hashes (sha256sum --check)",
        f"{len((dist / SUMS).read_text().splitlines())} files",
    )
    key = load_public_key(pub)
    expect(verify_tree(dist, key).ok, "verify_tree failed on the untouched release")
    r = sh(
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        other_pub,
        "-rawin",
        "-in",
        dist / SUMS,
        "-sigfile",
        dist / SIG,
    )
    expect(r.returncode != 0, "openssl accepted another key")
    expect(not verify_tree(dist, load_public_key(other_pub)).signature_ok, "another key verified")
    small = min(
        (p for p in dist.iterdir() if p.is_file() and p.name not in (SUMS, SIG)),
        key=lambda p: p.stat().st_size,
    )
    original = small.read_bytes()
    try:
        small.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        expect(
            sh("sha256sum", "--check", "--strict", "--quiet", SUMS, cwd=dist).returncode != 0,
            "sha256sum accepted a changed file",
        )
        expect(verify_tree(dist, key).changed == [small.name], "a changed file was not found")
    finally:
        small.write_bytes(original)
    extra = dist / "README-extra.sh"
    try:
        extra.write_text("echo not signed\n")
        expect(verify_tree(dist, key).extra == [extra.name], "an extra file was not found")
    finally:
        extra.unlink()
    say("release: a changed file, an extra file and another key each fail")


# -------------------------------------------------------------------------- dpkg


def make_root(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers", "alternatives"):
        (admin / d).mkdir(parents=True)
    for f in ("status", "available"):
        (admin / f).touch()
    (root / "var/log").mkdir(parents=True)
    (root / "home/clinician").mkdir(parents=True)
    (root / "etc/noteward").mkdir(parents=True)


def dpkg(root: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return sh(
        "dpkg",
        f"--root={root}",
        "--force-script-chrootless",
        "--force-depends",
        f"--log={root}/var/log/dpkg.log",
        *args,
    )


def installed_version(root: Path) -> str | None:
    r = sh(
        "dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Version} ${Status}", "noteward"
    )
    if r.returncode != 0 or not r.stdout.endswith(" ok installed"):
        return None
    return r.stdout.split()[0]


def newer_deb(deb: Path, work: Path) -> tuple[Path, str]:
    """The same package with the next Debian revision: a newer build for the upgrade."""
    tree = work / "newer"
    if tree.exists():
        shutil.rmtree(tree)
    r = sh("dpkg-deb", "-R", deb, tree)
    expect(r.returncode == 0, f"dpkg-deb -R failed: {r.stderr}")
    control = (tree / "DEBIAN/control").read_text()
    old = re.search(r"^Version: (\S+)$", control, re.M)
    assert old
    upstream, rev = old.group(1).rsplit("-", 1)
    new = f"{upstream}-{int(rev) + 1}"
    (tree / "DEBIAN/control").write_text(
        control.replace(f"Version: {old.group(1)}", f"Version: {new}")
    )
    pre = tree / "DEBIAN/preinst"
    pre.write_text(pre.read_text().replace(f'NEW="{old.group(1)}"', f'NEW="{new}"'))
    out = work / f"noteward_{new}_amd64.deb"
    r = sh("dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", tree, out)
    expect(r.returncode == 0, f"dpkg-deb --build failed: {r.stderr}")
    shutil.rmtree(tree)
    return out, new


# ----------------------------------------------------------------- the installed app


def user_env(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOTEWARD_", "XDG_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        HOME=str(root / "home/clinician"),
        NOTEWARD_PASSPHRASE=PASSPHRASE,
        NOTEWARD_POLICY_FILE=str(root / "etc/noteward/policy.json"),
        QT_QPA_PLATFORM="offscreen",
        LC_ALL="C.UTF-8",
    )
    return env


def noteward(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return sh(root / "opt/noteward/noteward", *args, env=env or user_env(root), timeout=timeout)


def check_installed(root: Path, pub: Path, other_pub: Path, sbom: Path | None, gui: bool) -> Path:
    top = root / "opt/noteward"
    link = root / "usr/bin/noteward"
    expect(
        link.is_symlink() and os.readlink(link) == "/opt/noteward/noteward",
        "/usr/bin/noteward is not the link to /opt/noteward/noteward",
    )
    for rel in (
        "usr/share/applications/noteward.desktop",
        "usr/share/icons/hicolor/scalable/apps/noteward.svg",
        "opt/noteward/resources/licenses/notices.yaml",
    ):
        expect((root / rel).is_file(), f"{rel} not installed")
    r = noteward(root, "--version")
    expect(
        r.returncode == 0 and r.stdout.startswith("noteward "),
        f"--version failed: {r.stdout}{r.stderr}",
    )
    expect(
        f"Licence notices: {top}/resources/licenses/notices.yaml" in r.stdout,
        f"--version does not point to the installed notices: {r.stdout}",
    )
    say("installed noteward --version", " | ".join(r.stdout.splitlines()))
    vault = root / "home/clinician/.local/share/noteward/vault.nwv"
    r = noteward(root, "init")
    expect(r.returncode == 0 and vault.exists(), f"init failed: {r.stdout}{r.stderr}")
    r = noteward(root, "check")
    expect(r.returncode == 0, f"check failed: {r.stdout}{r.stderr}")
    say("init and check on a fresh vault", r.stdout.strip().replace("\n", " | "))
    r = noteward(root, "verify-bundle", "--root", str(top), "--public-key", str(pub))
    expect(r.returncode == 0, f"verify-bundle failed: {r.stdout}{r.stderr}")
    say("installed verify-bundle", r.stdout.strip())
    # The changed and extra file cases use the same code in-process (a command start each
    # would double this check's time); another key goes through the installed command.
    key = load_public_key(pub)
    target = top / "resources/policy.example.json"
    original = target.read_bytes()
    try:
        target.write_bytes(original + b" ")
        verdict = verify_tree(top, key)
        expect(
            verdict.changed == ["resources/policy.example.json"],
            f"a changed file passed: {verdict.message()}",
        )
    finally:
        target.write_bytes(original)
    extra = top / "_internal/_extra.so"
    try:
        extra.write_bytes(b"\x7fELF not ours")
        verdict = verify_tree(top, key)
        expect(
            verdict.extra == ["_internal/_extra.so"], f"an extra file passed: {verdict.message()}"
        )
    finally:
        extra.unlink()
    r = noteward(root, "verify-bundle", "--root", str(top), "--public-key", str(other_pub))
    expect(
        r.returncode == 1 and "signature does not match" in r.stdout,
        f"another key passed: {r.stdout}",
    )
    say("installed: a changed file, an extra file and another key each fail verify-bundle")
    if sbom is not None:
        doc = json.loads(sbom.read_text())
        problems = check_sbom(doc, top)
        expect(not problems, "SBOM differs from the installed copy: " + "; ".join(problems[:10]))
        kinds: dict[str, int] = {}
        for c in doc["components"]:
            kinds[c["type"]] = kinds.get(c["type"], 0) + 1
        say(
            "SBOM matches the installed packages and model files, hashes included",
            ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
        )
        model = top / "models/smollm2-135m-clinical-lora.gguf"
        original = model.read_bytes()
        try:
            model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
            problems = check_sbom(doc, top)
            expect(
                problems == [f"{model.relative_to(top)}: hash differs from the SBOM"],
                f"a changed model file was not found by the SBOM check: {problems}",
            )
        finally:
            model.write_bytes(original)
        say("SBOM: a changed model file is found")
    if gui:
        env = {**user_env(root), "NOTEWARD_STARTUP_PROBE": "1"}
        r = noteward(root, env=env, timeout=300)
        expect(
            r.returncode == 0 and "unlock dialog visible" in r.stdout,
            f"the desktop client did not reach its unlock dialog: {r.stdout}{r.stderr[-2000:]}",
        )
        say("desktop client offscreen", r.stdout.strip().splitlines()[-1])
    return vault


def smoke(root: Path) -> None:
    """The installed copy's heavy parts: llama.cpp (the command-line demo's summary), spaCy and
    Presidio (deid), torch, transformers and sentence-transformers (index, search)."""
    demo_vault = root / "home/clinician/.local/share/noteward/demo/demo.nwv"
    env = {**user_env(root), "NOTEWARD_PASSPHRASE": "noteward-demo"}
    r = noteward(root, "demo", "--cli", env=env, timeout=1200)
    expect(
        r.returncode == 0 and "Summary of" in r.stdout,
        f"demo failed: {r.stdout[-1500:]}{r.stderr[-1500:]}",
    )
    say(
        "installed demo: vault created, a patient summarized by llama.cpp",
        f"{sum(1 for line in r.stdout.splitlines() if line.startswith('  - '))} sentences",
    )
    text = root / "home/clinician/note.txt"
    text.write_text("Seen by Dr. Alice Moreno on 03/04/2021 at Springfield General, MRN 448812.\n")
    r = noteward(root, "deid", "--text-file", str(text), timeout=600)
    expect(
        r.returncode == 0 and "Moreno" not in r.stdout and "448812" not in r.stdout,
        f"deid failed: {r.stdout}{r.stderr[-1500:]}",
    )
    say("installed deid (spaCy, Presidio)", r.stdout.strip())
    r = noteward(root, "index", "--vault", str(demo_vault), env=env, timeout=1200)
    expect(r.returncode == 0, f"index failed: {r.stdout}{r.stderr[-1500:]}")
    r = noteward(
        root,
        "search",
        "--vault",
        str(demo_vault),
        "shortness of breath",
        "--k",
        "3",
        "--mode",
        "dense",
        env=env,
        timeout=600,
    )
    expect(r.returncode == 0 and r.stdout.strip(), f"search failed: {r.stdout}{r.stderr[-1500:]}")
    say(
        "installed index and dense (embedding) search (torch, sentence-transformers)",
        f"{len(r.stdout.strip().splitlines())} lines of hits",
    )


def run_check(
    dist: Path, pub: Path, work: Path, gui: bool = True, smoke_test: bool = False
) -> None:
    work.mkdir(parents=True, exist_ok=True)
    debs = sorted(dist.glob("noteward_*_amd64.deb"))
    expect(len(debs) == 1, f"expected one .deb in {dist}, found {len(debs)}")
    deb = debs[0]
    sboms = sorted(dist.glob("noteward-*.cdx.json"))
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other.pub"
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from noteward.bundle import public_pem

        other.write_bytes(public_pem(Ed25519PrivateKey.generate()))
        check_release(dist, pub, other)

        root = work / "root"
        make_root(root)
        r = dpkg(root, "--install", deb)
        expect(r.returncode == 0, f"dpkg --install failed: {r.stdout}{r.stderr}")
        first = installed_version(root)
        say(f"dpkg --root installed {deb.name}", f"version {first}")
        vault = check_installed(root, pub, other, sboms[0] if sboms else None, gui)
        if smoke_test:
            smoke(root)

        newer, new_version = newer_deb(deb, work)
        r = dpkg(root, "--install", newer)
        expect(
            r.returncode == 0 and installed_version(root) == new_version,
            f"upgrade failed: {r.stdout}{r.stderr}",
        )
        r = noteward(root, "check")
        expect(
            vault.exists() and r.returncode == 0,
            f"vault not usable after upgrade: {r.stdout}{r.stderr}",
        )
        say(f"upgraded {first} -> {new_version}; vault kept", r.stdout.strip().replace("\n", " | "))
        r = dpkg(root, "--install", deb)
        expect(
            r.returncode != 0 and installed_version(root) == new_version,
            f"a downgrade was not refused: {r.stdout}{r.stderr}",
        )
        refused = next(
            (line for line in r.stderr.splitlines() if "refusing to downgrade" in line), ""
        )
        expect(bool(refused), f"the downgrade was refused without our message: {r.stderr}")
        say("downgrade refused", refused.strip())
        r = noteward(root, "check")
        expect(r.returncode == 0, "the newer install was damaged by the refused downgrade")

        before = sha256_file(vault)
        r = dpkg(root, "--remove", "noteward")
        expect(
            r.returncode == 0 and not (root / "opt/noteward/noteward").exists(),
            f"remove failed: {r.stdout}{r.stderr}",
        )
        expect(sha256_file(vault) == before, "the vault changed on removal")
        r = dpkg(root, "--purge", "noteward")
        expect(r.returncode == 0, f"purge failed: {r.stdout}{r.stderr}")
        expect(vault.exists() and sha256_file(vault) == before, "the vault changed on purge")
        expect(
            not (root / "usr/bin/noteward").exists() and not (root / "opt/noteward").exists(),
            "files left after purge",
        )
        say(
            "removed and purged; vault untouched",
            f"{vault.relative_to(root)} sha256 {before[:16]}…",
        )
        newer.unlink()
        shutil.rmtree(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="installer/dist_check.py")
    parser.add_argument("dist", help="the folder make dist wrote")
    parser.add_argument(
        "--public-key",
        help="release public key (default DIST/noteward-release.pub, a development build's)",
    )
    parser.add_argument("--work", default=str(REPO / "build/dist/check"))
    parser.add_argument("--no-gui", action="store_true", help="skip the desktop client")
    parser.add_argument(
        "--smoke", action="store_true", help="also summarize, de-identify and search"
    )
    args = parser.parse_args(argv)
    dist = Path(args.dist).resolve()  # dpkg needs an absolute --root
    pub = Path(args.public_key) if args.public_key else dist / "noteward-release.pub"
    try:
        run_check(dist, pub, Path(args.work).resolve(), gui=not args.no_gui, smoke_test=args.smoke)
    except CheckFailed as exc:
        print(f"FAIL {exc}", flush=True)
        return 1
    print("dist-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
