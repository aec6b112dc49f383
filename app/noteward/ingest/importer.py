"""Import files into a vault: parse everything first, then write it in one transaction.

An import commits whole or changes nothing. Empty notes are skipped; a note is skipped
as a duplicate only when patient, date and text all match a stored note; the same text
under another date is kept and marked as a near-duplicate of the first copy so summaries
do not count it twice. Re-importing the same files adds nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from noteward.core.errors import CancelledError, InputError, UsageError
from noteward.core.ids import new_id
from noteward.core.models import Note, Patient
from noteward.ingest.chunking import chunk_note
from noteward.ingest.cleaning import is_empty, normalize
from noteward.ingest.fhir import parse_fhir_file
from noteward.ingest.records import ImportProblem, ImportReport, ParsedBatch, problem_at
from noteward.ingest.textfiles import parse_csv_file, parse_text_file
from noteward.store import chunks, encounters, facts, imports, notes, patients
from noteward.store.vault import Vault, now_iso

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
TEXT_SUFFIXES = {".txt", ".text", ".md", ".note", ""}
FHIR_SUFFIXES = {".ndjson", ".json"}
PARSER_FAILED = "Noteward could not parse this file (please report it)"


def max_note_bytes() -> int:
    return int(float(os.environ.get("NOTEWARD_MAX_NOTE_MB", "10")) * 1_000_000)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Files in a folder that document the folder rather than being notes.
_DOC_FILES = ("readme", "license", "licence", "notice", "copying", "changelog")


def _files(paths: Iterable[str | Path], batch: ParsedBatch) -> list[tuple[Path, Path]]:
    out: list[tuple[Path, Path]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if not f.is_file() or any(part.startswith(".") for part in f.relative_to(path).parts):
                    continue
                if f.name.lower().startswith(_DOC_FILES):
                    batch.ignored["documentation file"] = batch.ignored.get("documentation file", 0) + 1
                    continue
                out.append((f, path))
        elif path.is_file():
            out.append((path, path.parent))
        else:
            batch.problems.append(ImportProblem(path.name, "no such file or folder"))
    return out


def parse_paths(paths: Iterable[str | Path], csv_map: dict[str, str] | None = None,
                cancel: threading.Event | None = None) -> ParsedBatch:
    """Parse files and folders (text, CSV, FHIR NDJSON/Bundle) without touching a vault."""
    batch = ParsedBatch()
    limit = max_note_bytes()
    for f, root in _files(paths, batch):
        if cancel is not None and cancel.is_set():
            raise CancelledError("Import cancelled; nothing was changed.")
        suffix = f.suffix.lower()
        try:
            if suffix in FHIR_SUFFIXES:
                batch.extend(parse_fhir_file(f, limit))
            elif suffix == ".csv":
                batch.extend(parse_csv_file(f, csv_map or {}, limit))
            elif suffix in TEXT_SUFFIXES:
                batch.extend(parse_text_file(f, root, limit))
            else:
                batch.problems.append(ImportProblem(f.name, f"unsupported file type '{suffix}' (use .txt, .csv, .ndjson or .json)"))
        except OSError as exc:
            batch.problems.append(ImportProblem(f.name, f"cannot read file: {exc.strerror}"))
        except Exception as exc:  # a parser's oversight costs one file, never the import
            log.warning("parser failed on a file (%s); reported and skipped", type(exc).__name__)
            batch.problems.append(ImportProblem(f.name, f"{PARSER_FAILED} ({type(exc).__name__}); skipped"))
    return batch


class _KillHook:
    """Test hook: SIGKILL this process once N rows are inside the import transaction
    (NOTEWARD_TEST_KILL_AFTER_ROWS) or right after commit (NOTEWARD_TEST_KILL_AFTER_COMMIT)."""

    def __init__(self) -> None:
        self.after_rows = int(os.environ.get("NOTEWARD_TEST_KILL_AFTER_ROWS", "0") or 0)
        self.after_commit = os.environ.get("NOTEWARD_TEST_KILL_AFTER_COMMIT") == "1"
        self.rows = 0

    def row(self) -> None:
        if self.after_rows:
            self.rows += 1
            if self.rows >= self.after_rows:
                os.kill(os.getpid(), signal.SIGKILL)

    def committed(self) -> None:
        if self.after_commit:
            os.kill(os.getpid(), signal.SIGKILL)


def import_paths(
    vault: Vault,
    paths: Iterable[str | Path],
    *,
    strict: bool = False,
    csv_map: dict[str, str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ImportReport:
    """Import files and folders into ``vault`` in one transaction.

    Malformed records are skipped and reported (file, line or resource, reason); with
    ``strict`` any problem aborts the import and nothing changes (InputError, exit 4).
    """
    t0 = time.perf_counter()
    paths = list(paths)
    if not paths:
        raise UsageError("Nothing to import: name at least one file or folder.")
    batch = parse_paths(paths, csv_map, cancel)
    report = ImportReport(import_id=new_id("im"))
    report.files = batch.files
    report.repaired_encoding = batch.repaired_encoding
    report.ignored_resources = dict(batch.ignored)
    report.problems = list(batch.problems)
    if strict and report.problems:
        err = InputError(
            f"{len(report.problems)} problem(s) in the input; --strict: nothing was imported. "
            f"First: {report.problems[0].file}"
            f"{':' + str(report.problems[0].line) if report.problems[0].line else ''}"
            f" {report.problems[0].resource or ''} {report.problems[0].reason}"
        )
        err.report = report  # type: ignore[attr-defined]
        report.seconds = time.perf_counter() - t0
        raise err
    _write(vault, batch, report, strict, progress, cancel)
    report.seconds = time.perf_counter() - t0
    log.info(
        "import %s: %d notes imported, %d skipped, %d near-duplicates, %d problems, %.2fs",
        report.import_id, report.counts["notes"]["imported"], report.counts["notes"]["skipped"],
        report.counts["notes"]["near_duplicates"], len(report.problems), report.seconds,
    )
    return report


def _write(vault: Vault, batch: ParsedBatch, report: ImportReport, strict: bool,
           progress: Progress | None, cancel: threading.Event | None) -> None:
    hook = _KillHook()
    total = len(batch.patients) + len(batch.encounters) + len(batch.notes) + len(batch.facts)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if cancel is not None and cancel.is_set():
            raise CancelledError("Import cancelled; nothing was changed.")
        if progress is not None and (done % 25 == 0 or done == total):
            progress(done, total)

    with vault.transaction():
        patient_ids = patients.ids_by_source(vault)
        created = now_iso()

        def ensure_patient(source_id: str, name: str) -> str:
            if source_id not in patient_ids:
                pid = new_id("pt")
                patients.add(vault, Patient(pid, source_id, name or source_id), created)
                hook.row()
                patient_ids[source_id] = pid
                report.bump("patients", "imported")
            return patient_ids[source_id]

        for p in batch.patients:
            step()
            if p.source_id in patient_ids:
                report.bump("patients", "skipped")
                continue
            pid = new_id("pt")
            patients.add(vault, Patient(pid, p.source_id, p.name, p.birth_date, p.sex, p.deceased,
                                        p.deceased_date, details=p.details), created)
            hook.row()
            patient_ids[p.source_id] = pid
            report.bump("patients", "imported")

        def patient_for(source_id: str, what: str, origin: str) -> str | None:
            if source_id in patient_ids:
                return patient_ids[source_id]
            report.problems.append(problem_at(origin, f"{what} refers to a patient that is neither in this import nor in the vault"))
            return None

        encounter_ids = encounters.ids_by_source(vault)
        for e in batch.encounters:
            step()
            if e.source_id in encounter_ids:
                report.bump("encounters", "skipped")
                continue
            epid = patient_for(e.patient_source_id, "an Encounter", e.origin)
            if epid is None:
                report.bump("encounters", "skipped")
                continue
            eid = new_id("en")
            encounters.add(vault, encounters.Encounter(eid, epid, e.source_id, e.date, e.end_date, e.type))
            hook.row()
            encounter_ids[e.source_id] = eid
            report.bump("encounters", "imported")

        known: dict[tuple[str, str], list[tuple[str | None, str]]] = {}
        for pid_, h, d, nid in notes.fingerprints(vault):
            known.setdefault((pid_, h), []).append((d, nid))
        for n in batch.notes:
            step()
            text = normalize(n.text)
            if is_empty(text):
                report.empty_skipped += 1
                report.bump("notes", "skipped")
                continue
            npid = (
                patient_for(n.patient_source_id, "a DocumentReference", n.origin)
                if n.source == "fhir"
                else ensure_patient(n.patient_source_id, n.patient_name or n.patient_source_id)
            )
            if npid is None:
                report.bump("notes", "skipped")
                continue
            pid = npid
            h = content_hash(text)
            copies = known.setdefault((pid, h), [])
            if any(d == n.date for d, _ in copies):
                report.bump("notes", "skipped")
                continue
            near = copies[0][1] if copies else None
            nid = new_id("nt")
            notes.add(
                vault,
                Note(nid, pid, text, n.date, n.type, n.author, n.source, n.source_id,
                     encounter_ids.get(n.encounter_source_id or ""), h, near),
                import_id=report.import_id, created_at=created,
            )
            hook.row()
            copies.append((n.date, nid))
            report.bump("notes", "imported")
            if near:
                report.bump("notes", "near_duplicates")
            for c in chunk_note(text):
                chunks.add(vault, nid, pid, c.start, c.end, c.section, text[c.start:c.end])

        facts_known = facts.source_keys(vault)
        for f in batch.facts:
            step()
            if f.source_id and (f.kind, f.source_id) in facts_known:
                report.bump("facts", "skipped")
                continue
            fpid = patient_for(f.patient_source_id, f"a {f.kind} record", f.origin)
            if fpid is None:
                report.bump("facts", "skipped")
                continue
            facts.add(vault, facts.Fact(fpid, f.kind, f.source_id, f.code, f.display, f.status, f.date,
                                        f.end_date, encounter_ids.get(f.encounter_source_id or "")))
            hook.row()
            if f.source_id:
                facts_known.add((f.kind, f.source_id))
            report.bump("facts", "imported")

        if strict and report.problems:
            raise InputError(
                f"{len(report.problems)} problem(s) in the input; --strict: nothing was imported. "
                f"First: {report.problems[0].file} {report.problems[0].reason}"
            )
        imports.record(vault, report.import_id, created, now_iso(), report.counts, len(report.problems))
    report.committed = True
    hook.committed()


def summary_counts(report: ImportReport) -> dict[str, Any]:
    return {k: dict(v) for k, v in report.counts.items()}
