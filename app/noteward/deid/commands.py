"""De-identification commands: `noteward deid`, `noteward export`, `noteward eval deid`,
`noteward bench deid`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from noteward import console
from noteward.core.errors import UsageError
from noteward.store.unlock import open_vault


def _read_secret(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        raw = Path(path).read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"Cannot read the secret file: {exc.strerror}.") from None
    if not raw:
        raise UsageError("The secret file is empty; put at least 16 random bytes (or hex) in it.")
    try:
        return bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return raw


def cmd_deid(args: argparse.Namespace) -> int:
    from noteward.deid.engine import Deidentifier

    if args.text_file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot read {args.text_file}: {exc.strerror}.") from None
        except UnicodeDecodeError:
            raise UsageError(f"{args.text_file} is not UTF-8 text; convert it first.") from None
    secret: bytes | str | None = _read_secret(args.secret_file)
    patient = None
    if args.patient:
        vault = open_vault(args)
        try:
            patient = vault.patient(args.patient)
            if secret is None:
                secret = vault.meta("deid_secret")
        finally:
            vault.close()
    result = Deidentifier(point=args.point).anonymize(text, mode=args.mode, patient=patient, secret=secret)
    if args.json:
        console.print_json(result.to_json())
    else:
        sys.stdout.write(result.text)
        if not result.text.endswith("\n"):
            sys.stdout.write("\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from noteward.deid.export import write_export

    if args.approved_summary:
        return _export_approved_summary(args)
    if args.deidentify == args.identified:
        raise UsageError("Choose one of --deidentify (for research and training) or --identified (audited).")
    if bool(args.patient) == bool(args.all):
        raise UsageError("Choose --patient ID or --all.")
    fmt = args.format or "jsonl"
    vault = open_vault(args)
    try:
        vault.require_admin("export notes")
        ids = [vault.patient(args.patient).id] if args.patient else [p.id for p in vault.patients()]
        if not ids:
            raise UsageError("The vault has no patients to export. Import notes with `noteward import PATH`.")
        counts = write_export(
            vault, ids, args.out, fmt=fmt, deidentify=args.deidentify, mode=args.mode,
            overwrite=args.force,
        )
    finally:
        vault.close()
    kind = "de-identified" if args.deidentify else "IDENTIFIED (audited)"
    print(f"Wrote {kind} {fmt} export to {args.out}: {counts['patients']} patients, {counts['notes']} notes.")
    return 0


def _export_approved_summary(args: argparse.Namespace) -> int:
    """`export --patient ID --approved-summary [--format fhir] OUT`: the approved summary as
    a FHIR R4 Composition (identified; admin only; audited)."""
    from noteward.deid.export import write_composition

    if args.deidentify:
        raise UsageError(
            "An approved summary is exported identified (a FHIR Composition for the patient's record); "
            "--deidentify does not apply to it."
        )
    if not args.patient:
        raise UsageError("Give --patient ID: an approved summary is exported one patient at a time.")
    if args.format not in (None, "fhir"):
        raise UsageError("An approved summary is exported as FHIR (a Composition in a document Bundle): use --format fhir.")
    vault = open_vault(args)
    try:
        counts = write_composition(vault, vault.patient(args.patient).id, args.out, overwrite=args.force)
    finally:
        vault.close()
    print(
        f"Wrote the IDENTIFIED approved summary (FHIR R4 Composition, audited) to {args.out}: "
        f"{counts['sections']} sections, {counts['cited_notes']} cited notes."
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from noteward.deid import evaluation

    data_dir, synthea = evaluation.default_paths()
    if args.data:
        data_dir = Path(args.data)
    if args.synthea:
        synthea = Path(args.synthea)
    points = ("default", "recall") if args.mode == "both" else (args.mode,)
    folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    if args.ner_weights:
        from noteward.deid.engine import stock_ner_weights, use_ner_weights

        if args.ner_weights == "stock":
            use_ner_weights(stock_ner_weights())
        else:
            path = Path(args.ner_weights)
            if not path.is_file():
                raise UsageError(f"No NER weights at {path}: give a file `noteward finetune-deid-ner` wrote, or 'stock'.")
            try:
                use_ner_weights(path.read_bytes())
            except UsageError as exc:
                raise UsageError(f"{path} is {exc}: give a file `noteward finetune-deid-ner` wrote, or 'stock'.") from exc
    report = evaluation.run(data_dir, synthea, which=args.split, limit=args.limit, baseline=not args.no_baseline,
                            points=points, folds=folds, physionet=not args.no_physionet, locked=args.locked_final_test,
                            swap_seed=args.swap_names)
    if args.json:
        for res in report["engines"].values():
            for r in res.values():
                r.pop("misses", None)
                r.pop("false_alarms", None)
        console.print_json(report)
    else:
        print(evaluation.format_report(report))
    return 0


def synthea_notes(folder: Path, limit: int | None = None) -> list[str]:
    """Note texts from the base64 attachments of Synthea DocumentReference resources."""
    import base64

    texts: list[str] = []
    for path in sorted(folder.glob("DocumentReference*.ndjson")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                for c in json.loads(line).get("content", []):
                    att = c.get("attachment") or {}
                    if att.get("data") and str(att.get("contentType", "text/plain")).startswith("text/plain"):
                        texts.append(base64.b64decode(att["data"]).decode("utf-8", errors="replace"))
                        break
                if limit and len(texts) >= limit:
                    return texts
    return texts


_BATCH = 16


_POINT = {"point": "default"}


def physionet_notes(folder: Path, limit: int | None = None) -> list[str]:
    """Texts of the PhysioNet deid development notes (never the locked final test)."""
    from noteward.deid.evaluation import PHYSIONET_FILE, load_physionet

    notes = load_physionet(folder / PHYSIONET_FILE, "dev")
    return [n.text for n in notes][:limit]


def _work(texts: list[str]) -> int:
    """De-identify a batch of notes (tags), as an export does; returns entities found."""
    from noteward.deid.engine import Deidentifier

    d = Deidentifier(point=_POINT["point"])
    n = 0
    for text, ents in zip(texts, d.analyze_many(texts), strict=True):
        n += len(d.anonymize(text, mode="tag", entities=ents).entities)
    return n


def _baseline_work(texts: list[str]) -> int:
    from noteward.deid.engine import presidio_default_analyzer

    an = presidio_default_analyzer()
    return sum(len(an.analyze(text=t, language="en")) for t in texts)


def _rate(fn: Any, texts: list[str], workers: int) -> tuple[float, int]:
    """Notes per second (wall clock) over ``texts`` with ``workers`` processes; the
    pipeline is loaded before the clock starts (forked workers share it)."""
    chunks = [texts[i : i + _BATCH] for i in range(0, len(texts), _BATCH)]
    t0 = time.perf_counter()
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            n_ent = sum(pool.map(fn, chunks, chunksize=1))
    else:
        n_ent = sum(fn(c) for c in chunks)
    return len(texts) / (time.perf_counter() - t0), n_ent


def cmd_bench(args: argparse.Namespace) -> int:
    from noteward.deid import engine
    from noteward.deid.evaluation import PHYSIONET_FILE, default_paths

    _POINT["point"] = args.mode
    if args.corpus == "physionet":
        folder = Path(args.data) if args.data else default_paths()[0]
        if not (folder / PHYSIONET_FILE).exists():
            raise UsageError(f"No {PHYSIONET_FILE} in {folder}; give --data DIR or --corpus synthea.")
        texts = physionet_notes(folder, args.limit)
    else:
        folder = Path(args.synthea) if args.synthea else default_paths()[1]
        if not folder.exists():
            raise UsageError(f"No Synthea FHIR folder at {folder}; give --synthea DIR.")
        texts = synthea_notes(folder, args.limit)
    if not texts:
        raise UsageError(f"No notes in {folder}.")
    t0 = time.perf_counter()
    engine.Deidentifier.warm()
    load_s = time.perf_counter() - t0
    workers = args.workers or min(2, os.cpu_count() or 1)
    _work(texts[:2])
    cpu0 = time.process_time()
    rate1, n_ent = _rate(_work, texts, 1)
    cpu_per_note_ms = (time.process_time() - cpu0) / len(texts) * 1000
    rate_n = _rate(_work, texts, workers)[0] if workers > 1 else rate1
    report: dict[str, Any] = {
        "corpus": args.corpus,
        "point": args.mode,
        "notes": len(texts),
        "mean_chars": round(sum(map(len, texts)) / len(texts)),
        "load_s": round(load_s, 2),
        "entities": n_ent,
        "cpu_ms_per_note": round(cpu_per_note_ms, 1),
        "notes_per_s_1_process": round(rate1, 2),
        f"notes_per_s_{workers}_processes": round(rate_n, 2),
        "target_notes_per_s_1_process": 50,
    }
    if not args.no_baseline:
        engine.presidio_default_analyzer()
        sample = texts[: max(1, min(len(texts), args.baseline_notes))]
        _baseline_work(sample[:2])
        report["baseline_presidio_default_notes_per_s_1_process"] = round(_rate(_baseline_work, sample, 1)[0], 2)
        report["baseline_notes"] = len(sample)
    if args.json:
        console.print_json(report)
    else:
        for k, v in report.items():
            print(f"{k:<48} {v}")
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    p = sub.add_parser("deid", help="de-identify a text file (prints the result)")
    p.add_argument("--text-file", required=True, help="UTF-8 text file to de-identify ('-' for stdin)")
    p.add_argument("--mode", choices=("tag", "surrogate"), default="tag", help="[NAME] tags or surrogate values")
    p.add_argument("--point", choices=("default", "recall"), default="default",
                   help="operating point: default (the de-identified view) or recall (text leaving the vault)")
    p.add_argument("--secret-file", help="secret for surrogates (hex or bytes); default: random per run")
    p.add_argument("--patient", help="also use this vault patient's own record (and the vault's secret)")
    p.add_argument("--json", action="store_true", help="print {text, entities} with offsets into the input")
    console.add_vault_args(p)
    p.set_defaults(handler=cmd_deid)

    p = sub.add_parser(
        "export",
        help="export notes, de-identified (or identified, audited); or an approved summary as FHIR",
    )
    console.add_vault_args(p)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--patient", help="patient id or source id")
    who.add_argument("--all", action="store_true", help="every patient")
    p.add_argument("--deidentify", action="store_true", help="remove PHI (Safe Harbor); only Noteward ids remain")
    p.add_argument("--identified", action="store_true", help="export identified data (recorded in the audit trail)")
    p.add_argument("--format", choices=("jsonl", "fhir"), default=None,
                   help="jsonl (default) or fhir; an approved summary is always fhir")
    p.add_argument("--approved-summary", action="store_true",
                   help="the patient's approved summary as a FHIR R4 Composition (identified: admin only, audited)")
    p.add_argument("--mode", choices=("tag", "surrogate"), default="surrogate",
                   help="how PHI is replaced in a de-identified export (default surrogate)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("out", help="file to write")
    p.set_defaults(handler=cmd_export)

    e = groups["eval"].add_parser("deid", help="recall/precision/F2 on the de-identification dev sets")
    e.add_argument("--json", action="store_true")
    e.add_argument("--split", choices=("odd", "even", "all"), default="odd",
                   help="odd ids (report, default), even ids (tuning) or all")
    e.add_argument("--limit", type=int, help="at most N records per set (a quick slice)")
    e.add_argument("--no-baseline", action="store_true", help="skip Presidio's default configuration")
    e.add_argument("--data", help="folder with asq_phi.jsonl and presidio_synth_v2.json")
    e.add_argument("--synthea", help="Synthea FHIR folder for the over-redaction check")
    e.add_argument("--mode", choices=("default", "recall", "both"), default="both",
                   help="operating point(s) to score (default both)")
    e.add_argument("--folds", help="PhysioNet development folds to score, e.g. 0,1 (default all five)")
    e.add_argument("--swap-names", type=int, metavar="SEED",
                   help="score the development notes with every gold name and place swapped for a random Census "
                        "name or US place of the same shape (seeded): a stand-in for patients never seen")
    e.add_argument("--no-physionet", action="store_true", help="skip the PhysioNet development notes")
    e.add_argument("--ner-weights", metavar="FILE|stock",
                   help="score with these NER weights instead of the shipped ones: a file from "
                        "`finetune-deid-ner --exclude-fold K` (with --folds K) or 'stock' (spaCy's own)")
    e.add_argument("--locked-final-test", action="store_true",
                   help="score the 25 locked PhysioNet patients instead (once, at the end; never tune on it)")
    e.set_defaults(handler=cmd_eval)

    b = groups["bench"].add_parser("deid", help="notes/s de-identifying the PhysioNet dev (or Synthea) notes")
    b.add_argument("--json", action="store_true")
    b.add_argument("--corpus", choices=("physionet", "synthea"), default="physionet",
                   help="PhysioNet deid development notes (default) or the Synthea notes")
    b.add_argument("--mode", choices=("default", "recall"), default="default", help="operating point")
    b.add_argument("--data", help="folder with physionet_dev.jsonl")
    b.add_argument("--limit", type=int, default=300, help="notes to time (default 300)")
    b.add_argument("--workers", type=int, help="processes (default: 2 or the core count)")
    b.add_argument("--synthea", help="Synthea FHIR folder")
    b.add_argument("--no-baseline", action="store_true", help="skip Presidio's default configuration")
    b.add_argument("--baseline-notes", type=int, default=100, help="notes for the baseline (default 100)")
    b.set_defaults(handler=cmd_bench)
