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

import json
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
        baseline: bool = True) -> dict[str, Any]:
    """Score Noteward's engine (and Presidio's default configuration) on the dev sets."""
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

    def ours(text: str) -> list[tuple[int, int, str]]:
        return [(e.start, e.end, e.type) for e in deid.analyze(text)]

    engines: dict[str, Callable[[str], list[tuple[int, int, str]]]] = {"noteward": ours}
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
    names = synthea_clinical_names(synthea_dir) if synthea_dir and synthea_dir.exists() else []
    if names and which != "all":
        names = [n for i, n in enumerate(names) if i % 2 == (1 if which == "odd" else 0)]
    if limit:
        names = names[: limit * 2]
    for name, fn in engines.items():
        res: dict[str, Any] = {}
        for set_name, recs in sets.items():
            res[set_name] = score(recs, fn)
        if names:
            res["over_redaction"] = over_redaction(names, fn)
        report["engines"][name] = res
    return report


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def format_report(report: dict[str, Any]) -> str:
    """Plain-text tables: per set, per engine, entity and token level."""
    lines = [f"De-identification eval on the {report['split']} half: " + ", ".join(f"{k} {v} records" for k, v in report["sets"].items())]
    for eng, res in report["engines"].items():
        for set_name, r in res.items():
            if set_name == "over_redaction":
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
