"""Summary subcommands: `summarize`, `eval summarize`, `eval checker`, `bench summarize`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from noteward import console
from noteward.core.errors import NotewardError, UsageError
from noteward.store.unlock import open_vault

LABEL = "Machine-generated summary: check each sentence against its sources before relying on it."


def register(sub: Any, groups: dict[str, Any]) -> None:
    """Add `summarize`, `eval summarize` and `bench summarize` to the parser."""
    p = sub.add_parser(
        "summarize", help="grounded summary of a patient's notes or of one text file"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--patient", help="patient id (or source id) in the vault")
    src.add_argument("--text-file", help="summarize one UTF-8 text file (no vault needed)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--model", help="model id from the manifest (default: settings, then manifest)")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: all cores)")
    p.add_argument(
        "--hide-unsupported",
        action="store_true",
        help="leave out unsupported sentences (text output)",
    )
    p.add_argument(
        "--no-model", action="store_true", help="extractive skeleton only (no model run)"
    )
    p.add_argument(
        "--recent-months",
        type=_positive,
        help="months of the record 'Recent findings' covers, back from the newest note"
        " (default: settings, 12)",
    )
    p.add_argument(
        "--max-sentences",
        type=_positive,
        help="length cap for the whole summary (default: settings, 15)",
    )
    console.add_vault_args(p)
    p.set_defaults(handler=cmd_summarize)

    e = groups["eval"].add_parser(
        "summarize", help="ROUGE-L, supported share, hallucinated numbers, key facts"
    )
    e.add_argument("--json", action="store_true")
    e.add_argument("--limit", type=int, help="only the first N items of MTS-Dialog and ACI-Bench")
    e.add_argument("--aci-limit", type=int, help="only the first N ACI-Bench visits (default: --limit)")
    e.add_argument(
        "--model", action="append", help="model id (repeatable; default: every manifest model)"
    )
    e.add_argument(
        "--no-own-output",
        action="store_true",
        help="skip each model's own text from the reference-v2 prompts (product summaries only)",
    )
    e.add_argument(
        "--number-constraint",
        choices=("on", "off", "both"),
        default="both",
        help="the model's own text written with the number constraint on, off, or both (two rows; default)."
        " Product summaries always run with it on",
    )
    e.add_argument("--groups", action="store_true", help="also print the figures by sex and age band")
    e.set_defaults(handler=cmd_eval)

    c = groups["eval"].add_parser(
        "checker", help="flag rates of the grounding checker on perturbed and human sentences"
    )
    c.add_argument("--json", action="store_true")
    c.add_argument("--per-kind", type=int, default=200, help="sentences sampled per kind")
    c.set_defaults(handler=cmd_eval_checker)

    b = groups["bench"].add_parser("summarize", help="speed of summaries vs raw llama.cpp")
    b.add_argument("--json", action="store_true")
    b.add_argument("--model", help="model id (default: settings, then manifest)")
    b.add_argument("--threads", type=int)
    b.add_argument("--repeat", type=int, default=2, help="runs per patient (fastest reported)")
    b.add_argument("--patient", action="append", help="Synthea patient id prefix (repeatable)")
    b.set_defaults(handler=cmd_bench)


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return n


def read_text_file(path: str) -> str:
    """The file decoded as UTF-8, BOM removed, newlines untranslated (offsets index this)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"Cannot read {path}: {exc.strerror}. Give an existing text file."
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not UTF-8 (byte {exc.start} is invalid). Convert it to UTF-8 and try again."
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def print_summary(result: Any, hide_unsupported: bool = False, out: Any = None) -> None:
    """Human-readable summary with dates, conflicts, sources and support, labelled
    machine-generated and with the model that wrote it (a ``Summary``, fresh or stored)."""
    from noteward.core.models import SUMMARY_SECTIONS

    out = out or sys.stdout
    print(LABEL, file=out)
    print(f"Model: {result.model['id']} ({result.model['sha256'][:12]})", file=out)
    known = set(SUMMARY_SECTIONS)
    for section in SUMMARY_SECTIONS:
        items = [
            s
            for s in result.sentences
            if (s.section if s.section in known else "Other") == section
            and (s.supported or not hide_unsupported)
        ]
        if not items:
            continue
        print(f"\n{section}:", file=out)
        for s in items:
            flag = "" if s.supported else "  [UNSUPPORTED]"
            when = f"[{s.date}] " if s.date else ""
            srcs = ", ".join(f"{x.note_id}:{x.start}-{x.end}" for x in s.sources) or "no source"
            origin = f"{s.origin}; " if s.origin else ""
            print(f"- {when}{s.text}{flag}", file=out)
            for c in s.conflicts:
                print(f"    CONFLICT: {c.date or 'undated'}: {c.text}", file=out)
            print(f"    {origin}sources: {srcs}; support {s.support:.2f}", file=out)
    t = result.timings
    left = sum(getattr(result, "omitted", {}).values())
    print(
        f"\n{len(result.sentences)} sentences, {sum(s.supported for s in result.sentences)} supported; "
        f"{t.get('total_ms', 0):.0f} ms"
        + (f"; {left} more left out by the length cap" if left else ""),
        file=out,
    )


def cmd_summarize(args: argparse.Namespace) -> int:
    from noteward.llm.summarizer import SummaryService

    svc = SummaryService(
        model_id=args.model,
        threads=args.threads,
        use_model=not args.no_model,
        recent_months=args.recent_months,
        max_sentences=args.max_sentences,
    )
    try:
        if args.text_file:
            result = svc.summarize_text(read_text_file(args.text_file))
        else:
            vault = open_vault(args)
            try:
                result = svc.summarize_patient(vault, args.patient)
            finally:
                vault.close()
    finally:
        svc.close()
    if args.json:
        console.print_json(result.to_json())
    else:
        print_summary(result, args.hide_unsupported)
    if result.summary_id:
        print(f"Saved in the vault as summary {result.summary_id}.", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from noteward.llm.evaluation import run_eval, shared_data_dir

    if not (shared_data_dir() / "mts_dialog").exists():
        raise NotewardError(
            f"Shared data not found at {shared_data_dir()}; set NOTEWARD_SHARED_DATA."
        )
    for flag, value in (("--limit", args.limit), ("--aci-limit", args.aci_limit)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1.")
    res = run_eval(
        limit=args.limit,
        models=args.model,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
        aci_limit=args.aci_limit,
        own_output=not args.no_own_output,
        number_constraint=args.number_constraint,
    )
    if args.json:
        console.print_json(res)
        return 0
    tables = list(res["datasets"].items())
    tables += [(f"aci_bench / {d}", systems) for d, systems in res.get("aci_divisions", {}).items()]
    for title, systems in tables:
        print(f"\n{title}")
        print("  " + _eval_header())
        for name, m in systems.items():
            print("  " + _eval_row(name, m))
            if args.groups:
                for key in ("by_sex", "by_age_band"):
                    for group, g in m.get(key, {}).items():
                        print("  " + _eval_row(f"  {key[3:]}={group}", g))
    for mid, checks in res.get("targets", {}).items():
        met = sum(c["ok"] for c in checks)
        print(f"\nissue 11 targets, {mid}: {met} of {len(checks)} met")
        for c in checks:
            value = "-" if c["value"] is None else f"{c['value']:.3f}"
            print(f"  {'PASS' if c['ok'] else 'FAIL'} {c['check']}: {value} ({c['bar']})")
    return 0


_EVAL_COLUMNS = (
    ("system", -84), ("n", 3), ("R-1", 6), ("R-2", 6), ("R-L", 6), ("R-Lsum", 6), ("support", 7),
    ("badnum", 6), ("bad-off", 7), ("copy4", 6), ("keyfact", 7), ("ms", 7),
)


def _cells(values: tuple[str, ...]) -> str:
    # a negative width left-aligns the column (the system names)
    return " ".join(f"{v:{'<' if w < 0 else '>'}{abs(w)}}" for v, (_c, w) in zip(values, _EVAL_COLUMNS, strict=True))


def _eval_header() -> str:
    return _cells(tuple(c for c, _w in _EVAL_COLUMNS))


def _eval_row(name: str, m: dict[str, Any]) -> str:
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    values = (
        name, str(m["items"]), f(m["rouge1_f"]), f(m["rouge2_f"]), f(m["rougeL_f"]), f(m["rougeLsum_f"]),
        f(m["supported_share"]), f(m["hallucinated_number_rate"]),
        f(m.get("hallucinated_number_rate_no_constraint")), f(m["copied_4gram_share"]),
        f(m["key_fact_recall"]), f"{m['mean_ms'] or 0:.0f}",
    )
    return _cells(values)


def cmd_eval_checker(args: argparse.Namespace) -> int:
    from noteward.llm.checker_eval import grounding_report
    from noteward.settings import shared_data_dir

    if not (shared_data_dir() / "mts_dialog").exists():
        raise NotewardError(
            f"Shared data not found at {shared_data_dir()}; set NOTEWARD_SHARED_DATA."
        )
    report = grounding_report(
        per_kind=args.per_kind, progress=lambda m: print(m, file=sys.stderr, flush=True)
    )
    if args.json:
        console.print_json(report.to_json())
    else:
        print("\n".join(report.lines()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from noteward.llm.bench import BENCH_PATIENTS, run_bench

    res = run_bench(tuple(args.patient or BENCH_PATIENTS), args.model, args.threads, args.repeat)
    if args.json:
        console.print_json(res)
    else:
        print(json.dumps(res, indent=2))
    return 0
