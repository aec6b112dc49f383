"""`noteward import` and `noteward bench import`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from noteward import console
from noteward.core.errors import InputError, UsageError
from noteward.store.unlock import open_vault


def _parse_map(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            if "=" not in part:
                raise UsageError(f"--map takes FIELD=COLUMN pairs, got '{part}'.")
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def cmd_import(args: argparse.Namespace) -> int:
    from noteward.ingest.importer import import_paths

    vault = open_vault(args)

    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rwriting {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        report = import_paths(vault, args.paths, strict=args.strict, csv_map=_parse_map(args.map), progress=progress)
    except InputError as exc:
        rep = getattr(exc, "report", None)
        if args.json and rep is not None:
            console.print_json(rep.to_json())
        elif rep is not None:
            _print_problems(rep)
        raise
    finally:
        vault.close()
    if args.json:
        console.print_json(report.to_json())
        return 0
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for kind, c in report.counts.items():
        extra = f", {c['near_duplicates']} near-duplicates kept and marked" if c["near_duplicates"] else ""
        print(f"{kind:<11} {c['imported']:>6} imported, {c['skipped']:>6} skipped{extra}")
    if report.empty_skipped:
        print(f"{report.empty_skipped} empty notes skipped")
    if report.repaired_encoding:
        print(f"{report.repaired_encoding} files or notes had their text encoding repaired")
    if report.ignored_resources:
        print("ignored resource types: " + ", ".join(f"{k} {v}" for k, v in sorted(report.ignored_resources.items())))
    _print_problems(report)
    print(f"done in {report.seconds:.2f} s")
    return 0


def _print_problems(report: Any) -> None:
    if not report.problems:
        return
    print(f"{len(report.problems)} problem(s):", file=sys.stderr)
    for p in report.problems[:50]:
        where = ":".join(str(x) for x in (p.file, p.line) if x)
        print(f"  {where} {p.resource or ''} {p.reason}".rstrip(), file=sys.stderr)
    if len(report.problems) > 50:
        print(f"  ... and {len(report.problems) - 50} more (use --json for all)", file=sys.stderr)


def cmd_bench_import(args: argparse.Namespace) -> int:
    from noteward.ingest.bench import bench_import

    result = bench_import(args.data, repeat=args.repeat)
    if args.json:
        console.print_json(result)
    else:
        for line in result["lines"]:
            print(line)
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    p = sub.add_parser("import", help="import notes: text files or folders, CSV, FHIR NDJSON or Bundle")
    console.add_vault_args(p)
    p.add_argument("paths", nargs="+", help="files or folders to import")
    p.add_argument("--strict", action="store_true", help="abort and change nothing on any malformed record")
    p.add_argument("--json", action="store_true", help="print the import report as JSON")
    p.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                   help="CSV column mapping, e.g. --map patient_id=MRN,text=Body")
    p.set_defaults(handler=cmd_import)

    b = groups["bench"].add_parser("import", help="notes/s importing the shared Synthea notes; encryption overhead")
    b.add_argument("--data", default=None, help="FHIR folder (default: ../shared/data/synthea_fhir)")
    b.add_argument("--repeat", type=int, default=3, help="runs of each variant (best is reported)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=cmd_bench_import)
