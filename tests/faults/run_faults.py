"""Fault campaign: SIGKILL and disk-full faults against the real `noteward` command.

``make faults`` (N runs, default 500; not part of ``make test`` or CI: 20 runs took 2.5 min
on a quiet two-core machine and 7.6 min on a busy one, most of it in index runs loading
the embedding model, so 500 take one to three hours; ``FAULTS_ARGS="--ops import,passwd"``
runs a subset). Each run copies a prepared vault, starts one real
``python -m noteward.cli`` child doing one of import, index, summarize (which saves the
summary in the vault), passwd and backup, and either SIGKILLs it at a random moment of a
normal run's duration or runs it under a random file-size limit (RLIMIT_FSIZE: writes past
it fail with EFBIG, as on a full disk). After every run it checks, with further children:

- the vault opens with the right passphrase (for passwd: exactly one of the old and the
  new one opens it; the new one when passwd reported success, the old one when it failed),
- ``noteward check`` passes (integrity, cipher HMACs, audit chain),
- the vault holds exactly committed data: its data tables equal the state before the
  command or the state a completed command leaves (the one or the other, nothing between;
  index commits in batches, so its embeddings may lie between), and exactly the completed
  state when the command reported success,
- a backup file, where one exists, opens and passes its check with the vault's data.

It prints every run, then runs, faults injected, failures, and exits 1 on any failure.

It lives under tests/ rather than installer/ because it is a test harness: it drives the
CLI the way tests/support/cli.py does and ships nothing; the installer holds what IT staff
run to build and verify a release.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.cli import REPO, child_env

OPS = ("import", "index", "summarize", "passwd", "backup")
DATA_TABLES = ("patients", "notes", "chunks", "embeddings", "facts", "summaries")
OLD, NEW = "fault campaign old passphrase 1!", "fault campaign new passphrase 2?"


@dataclass
class Reference:
    seconds: float
    after: dict[str, int]
    bytes_after: int  # the vault's files (and a backup) once the command completed


@dataclass
class Run:
    n: int
    op: str
    fault: str  # "kill" or "disk-full"
    detail: str = ""
    injected: bool = False
    rc: int | None = None
    failures: list[str] = field(default_factory=list)


class Campaign:
    def __init__(self, work: Path, data: Path, base_notes: int, import_notes: int, threads: int) -> None:
        self.work = work
        self.data = data
        self.base_notes = base_notes
        self.import_notes = import_notes
        self.threads = threads
        user = work / "user"
        self.env = child_env({
            "NOTEWARD_DATA_DIR": str(user / "data"),
            "NOTEWARD_CONFIG_DIR": str(user / "config"),
            "NOTEWARD_POLICY_FILE": str(user / "policy.json"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        })
        for var in ("NOTEWARD_VAULT", "NOTEWARD_NEW_PASSPHRASE"):
            self.env.pop(var, None)
        self.old = work / "old.pass"
        self.new = work / "new.pass"
        self.old.write_text(OLD + "\n")
        self.new.write_text(NEW + "\n")
        self.base = work / "base" / "vault.nwv"
        self.refs: dict[str, Reference] = {}
        self.patient = ""

    # -- children -------------------------------------------------------------------------

    def start(self, args: list[str], fsize: int | None = None) -> subprocess.Popen[str]:
        def limit() -> None:
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        return subprocess.Popen(
            [sys.executable, "-m", "noteward.cli", *args], cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit,
        )

    def call(self, args: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
        p = self.start(args)
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def op_args(self, op: str, vault: Path) -> list[str]:
        common = ["--vault", str(vault), "--passphrase-file", str(self.old)]
        return {
            "import": ["import", *common, "--json", str(self.work / "import")],
            "index": ["index", *common, "--json"],
            "summarize": ["summarize", *common, "--patient", self.patient, "--json", "--threads", str(self.threads)],
            "passwd": ["passwd", *common, "--new-passphrase-file", str(self.new)],
            "backup": ["backup", *common, str(vault.parent / "backup.nwv")],
        }[op]

    def check(self, vault: Path, passfile: Path) -> dict[str, Any] | None:
        """``noteward check --json``: the report when the vault opens, None when it does not."""
        r = self.call(["check", "--vault", str(vault), "--passphrase-file", str(passfile), "--json"], timeout=300)
        if r.returncode == 3:
            return None
        try:
            report: dict[str, Any] = json.loads(r.stdout)
        except json.JSONDecodeError:
            return {"ok": False, "problems": [f"check rc {r.returncode}: {r.stderr.strip()[-300:]}"], "counts": {}}
        return report

    # -- preparation ----------------------------------------------------------------------

    def prepare(self, ops: list[str]) -> None:
        base_in, more_in = self.work / "base_in", self.work / "import"
        base_in.mkdir()
        more_in.mkdir()
        for name in ("Patient.000.ndjson", "Encounter.000.ndjson"):
            shutil.copy(self.data / name, base_in / name)
        docs = (self.data / "DocumentReference.000.ndjson").read_bytes().splitlines(keepends=True)
        (base_in / "DocumentReference.000.ndjson").write_bytes(b"".join(docs[: self.base_notes]))
        (more_in / "DocumentReference.000.ndjson").write_bytes(
            b"".join(docs[self.base_notes : self.base_notes + self.import_notes]))
        for name in ("Condition.000.ndjson", "AllergyIntolerance.000.ndjson", "Immunization.000.ndjson"):
            shutil.copy(self.data / name, more_in / name)
        self.base.parent.mkdir()
        common = ["--vault", str(self.base), "--passphrase-file", str(self.old)]
        for args in (["init", *common], ["import", *common, str(base_in)]):
            r = self.call(args)
            if r.returncode != 0:
                raise SystemExit(f"preparing the base vault failed: {' '.join(args[:1])} rc {r.returncode}\n{r.stderr}")
        patients = json.loads(self.call(["patients", *common, "--json"]).stdout)
        self.patient = min((p for p in patients if p["note_count"]), key=lambda p: p["note_count"])["id"]
        before = self.check(self.base, self.old)
        assert before and before["ok"], before
        self.before = _data(before)
        print(f"base vault: {self.before}; summarize patient has "
              f"{min(p['note_count'] for p in patients if p['note_count'])} notes", flush=True)
        for op in ops:
            vault = self.copy_base(self.work / f"ref-{op}")
            t0 = time.perf_counter()
            r = self.call(self.op_args(op, vault))
            seconds = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"reference run of {op} failed: rc {r.returncode}\n{r.stderr}")
            after = self.check(vault, self.new if op == "passwd" else self.old)
            assert after and after["ok"], (op, after)
            size = max(f.stat().st_size for f in vault.parent.iterdir())
            self.refs[op] = Reference(seconds, _data(after), size)
            shutil.rmtree(vault.parent)
            print(f"reference {op}: {seconds:.1f} s, after: {self.refs[op].after}", flush=True)

    def copy_base(self, folder: Path) -> Path:
        folder.mkdir(parents=True)
        shutil.copy(self.base, folder / self.base.name)
        keys = self.base.with_name(self.base.name + ".keys")  # the vault's key file goes with it
        if keys.exists():
            shutil.copy(keys, folder / keys.name)
        return folder / self.base.name

    # -- one run --------------------------------------------------------------------------

    def run(self, n: int, op: str, fault: str, rng: random.Random) -> Run:
        run = Run(n, op, fault)
        folder = self.work / f"run-{n:04d}"
        vault = self.copy_base(folder)
        ref = self.refs[op]
        if fault == "kill":
            delay = rng.uniform(0, ref.seconds * 1.1)
            run.detail = f"kill at {delay:.2f}s of {ref.seconds:.1f}s"
            p = self.start(self.op_args(op, vault))
            try:
                p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                run.injected = True
            p.communicate(timeout=60)
        else:
            # any file the command writes (vault, WAL, journal, backup) stops growing here:
            # from almost nothing to a little more than the largest file a completed run left
            size = vault.stat().st_size
            fsize = rng.randint(4096, int(max(size, ref.bytes_after) * 1.1) + 4096)
            run.detail = f"file size limit {fsize // 1024} KiB (vault {size // 1024} KiB)"
            p = self.start(self.op_args(op, vault), fsize=fsize)
            try:
                _out, err = p.communicate(timeout=max(120, ref.seconds * 10))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                run.failures.append("hang: the command did not finish under a full disk")
                err = ""
            run.injected = p.returncode != 0
            if p.returncode == 1 and "internal error" in err:
                run.detail += "; internal error (" + err.split("internal error (", 1)[-1].split(")", 1)[0] + ")"
        run.rc = p.returncode
        completed = p.returncode == 0
        failed_cleanly = not completed and fault == "disk-full"
        self.verify(run, vault, op, completed, failed_cleanly)
        if not run.failures:
            shutil.rmtree(folder, ignore_errors=True)
        return run

    def verify(self, run: Run, vault: Path, op: str, completed: bool, failed_cleanly: bool) -> None:
        ref = self.refs[op]
        passfile = self.old
        if op == "passwd":
            with_old, with_new = self.check(vault, self.old), self.check(vault, self.new)
            opens = [name for name, rep in (("old", with_old), ("new", with_new)) if rep is not None]
            if len(opens) != 1:
                run.failures.append(f"passwd: the vault opens with {opens or 'neither passphrase'}; exactly one expected")
                return
            if completed and opens != ["new"]:
                run.failures.append("passwd reported success but the new passphrase does not open the vault")
            if failed_cleanly and opens != ["old"]:
                run.failures.append("passwd failed but the old passphrase no longer opens the vault")
            report = with_old or with_new
            passfile = self.old if with_old else self.new
        else:
            report = self.check(vault, passfile)
            if report is None:
                run.failures.append("the vault does not open with its passphrase")
                return
        assert report is not None
        if not report.get("ok"):
            run.failures.append(f"noteward check fails: {report.get('problems')}")
            return
        data = _data(report)
        before, after = self.before, ref.after
        if op == "index":
            others_same = all(data[k] == before[k] for k in DATA_TABLES if k != "embeddings")
            ok = others_same and before["embeddings"] <= data["embeddings"] <= after["embeddings"]
            allowed = "embeddings between the two"
        else:
            ok = data in (before, after)
            allowed = "one of the two"
        if not ok:
            run.failures.append(f"vault holds {data}; before {before}, completed {after}: expected {allowed}")
        elif completed and data != after:
            run.failures.append(f"the command succeeded but the vault holds {data}, not {after}")
        elif failed_cleanly and op != "index" and data != before:
            run.failures.append(f"the command failed (rc {run.rc}) but the vault changed: {data}")
        if op == "backup":
            out = vault.parent / "backup.nwv"
            if completed and not out.exists():
                run.failures.append("backup reported success but wrote no file")
            if out.exists():
                rep = self.check(out, passfile)
                if rep is None or not rep.get("ok") or _data(rep) != before:
                    run.failures.append("the backup file exists but does not open and check with the vault's data")


def _data(report: dict[str, Any]) -> dict[str, int]:
    return {k: int(report["counts"].get(k, -1)) for k in DATA_TABLES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=None, help="random seed (printed; reuse it to repeat a campaign)")
    ap.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    ap.add_argument("--disk-full-share", type=float, default=0.33, help="share of runs that are disk-full runs")
    ap.add_argument("--data", default=None, help="Synthea FHIR folder (default: the shared data)")
    ap.add_argument("--base-notes", type=int, default=40, help="notes in the prepared vault")
    ap.add_argument("--import-notes", type=int, default=80, help="notes the import runs add")
    ap.add_argument("--threads", type=int, default=2, help="model threads for summarize")
    ap.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    ops = [o for o in args.ops.split(",") if o]
    if unknown := set(ops) - set(OPS):
        ap.error(f"unknown operations: {', '.join(sorted(unknown))}")
    if args.data:
        data = Path(args.data)
    else:
        sys.path.insert(0, str(REPO / "app"))
        from noteward.settings import shared_data_dir

        data = shared_data_dir() / "synthea_fhir"
    if not (data / "DocumentReference.000.ndjson").exists():
        print(f"Synthea FHIR data not found at {data}; give --data.", file=sys.stderr)
        return 2
    print(f"fault campaign: {args.runs} runs of {','.join(ops)}, seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="nw-faults-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        campaign = Campaign(work, data, args.base_notes, args.import_notes, args.threads)
        campaign.prepare(ops)
        runs: list[Run] = []
        t0 = time.perf_counter()
        for n in range(1, args.runs + 1):
            op = rng.choice(ops)
            fault = "disk-full" if rng.random() < args.disk_full_share else "kill"
            run = campaign.run(n, op, fault, rng)
            runs.append(run)
            verdict = "FAIL: " + "; ".join(run.failures) if run.failures else "ok"
            print(f"run {n}/{args.runs} {op:<9} {fault:<9} {run.detail}; "
                  f"{'fault injected' if run.injected else 'completed first'}, rc {run.rc} -> {verdict}", flush=True)
        minutes = (time.perf_counter() - t0) / 60
    by = Counter((r.op, r.fault) for r in runs)
    injected = Counter((r.op, r.fault) for r in runs if r.injected)
    failed = Counter((r.op, r.fault) for r in runs if r.failures)
    print(f"\n{'operation':<10} {'fault':<10} {'runs':>5} {'injected':>9} {'failures':>9}")
    for key in sorted(by):
        print(f"{key[0]:<10} {key[1]:<10} {by[key]:>5} {injected[key]:>9} {failed[key]:>9}")
    total_failed = sum(1 for r in runs if r.failures)
    print(f"\nruns {len(runs)}, faults injected {sum(r.injected for r in runs)} "
          f"(kills {sum(r.injected for r in runs if r.fault == 'kill')}, "
          f"disk-full {sum(r.injected for r in runs if r.fault == 'disk-full')}), failures {total_failed}; "
          f"seed {seed}; {minutes:.1f} min")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
