"""`make bench-dist`: the bundle's size, its installed size, and its start to the unlock dialog.

    python installer/bench_dist.py DIST [--runs N] [--work DIR]

Sizes: the .deb and .tar.gz as shipped, and /opt/noteward once the .deb is installed with
dpkg into a throw-away root (as `make dist-check` does). Start-up: the installed
``noteward`` with NOTEWARD_STARTUP_PROBE=1 opens the desktop client offscreen exactly as a
clinician's start does and reports when its unlock dialog is on screen, counted from the
kernel's process start time; the wall time to the process's exit is printed beside it.
Warm: the median of N runs after one unmeasured run. Cold: after
``echo 3 > /proc/sys/vm/drop_caches`` (needs root and a writable /proc/sys; where it is not
permitted the figure is reported as not measured, never guessed). Baseline, in the same run:
the same probe run by the Python that runs this script (``make bench-dist``: the bundle's
build venv) on this checkout's code, i.e. the frozen bundle against the same code unfrozen.
Targets (issue 14): at most 2 GB installed, unlock dialog at most 3 s on two cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "installer"))
sys.path.insert(0, str(REPO / "app"))

from dist_check import dpkg, make_root, user_env  # noqa: E402


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def drop_caches() -> str | None:
    """Empty the page cache; None when done, else why not."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return None
    except OSError as exc:
        return f"not permitted here ({exc.strerror})"


def probe(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds from process start to the unlock dialog as the process saw it, wall seconds
    from spawning to exit)."""
    t0 = time.monotonic()
    r = subprocess.run(
        cmd, env={**env, "NOTEWARD_STARTUP_PROBE": "1"}, capture_output=True, text=True, timeout=600
    )
    wall = time.monotonic() - t0
    m = re.search(r"unlock dialog visible ([0-9.]+) s", r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit(f"the probe failed: {r.stdout}{r.stderr[-2000:]}")
    return float(m.group(1)), wall


def series(label: str, cmd: list[str], env: dict[str, str], runs: int) -> None:
    probe(cmd, env)  # unmeasured: fills the page cache
    warm = [probe(cmd, env) for _ in range(runs)]
    med = statistics.median(w[0] for w in warm)
    wall = statistics.median(w[1] for w in warm)
    print(
        f"{label:<34} warm: unlock dialog {med:5.2f} s (median of {runs}; "
        f"min {min(w[0] for w in warm):.2f}, max {max(w[0] for w in warm):.2f}), exit {wall:.2f} s"
    )
    why = drop_caches()
    if why:
        print(f"{label:<34} cold: not measured: dropping the page cache is {why}")
        return
    dialog, wall = probe(cmd, env)
    print(
        f"{label:<34} cold: unlock dialog {dialog:5.2f} s, exit {wall:.2f} s (page cache dropped)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="installer/bench_dist.py")
    parser.add_argument("dist")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", default=str(REPO / "build/dist/bench"))
    args = parser.parse_args(argv)
    dist = Path(args.dist)
    deb = next(dist.glob("noteward_*_amd64.deb"))
    tgz = next(dist.glob("noteward-*-linux-x86_64.tar.gz"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(
        f"bundle: {deb.name} {deb.stat().st_size / 1e6:.0f} MB, {tgz.name} {tgz.stat().st_size / 1e6:.0f} MB"
    )
    root = Path(args.work).resolve() / "root"  # dpkg needs an absolute --root
    make_root(root)
    r = dpkg(root, "--install", deb)
    if r.returncode != 0:
        raise SystemExit(f"dpkg --install failed: {r.stdout}{r.stderr}")
    top = root / "opt/noteward"
    internal = top / "_internal"
    sizes = {p.name: du(p) for p in internal.iterdir() if p.is_dir()}
    biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:8]
    total = du(root)
    print(
        f"installed: {total / 1e6:.0f} MB (target <= 2000 MB): /opt/noteward {du(top) / 1e6:.0f} MB; "
        "largest in _internal: " + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in biggest)
    )
    env = user_env(root)
    series("installed bundle", [str(top / "noteward")], env, args.runs)
    dev_env = {**env, "PYTHONPATH": str(REPO / "app")}
    series(
        "baseline: same code, not frozen",
        [sys.executable, str(REPO / "installer/pyinstaller/noteward_entry.py")],
        dev_env,
        args.runs,
    )
    shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
