"""Training and development sets of the "reference-v2" recipe: targets are the references.

Each example is a user turn built by ``noteward.llm.reference`` (the source, then the part
of the note to write) and the reference text itself as the target, with no sentence ids:
the checker grounds the output after generation. Sources (train splits only; the
corpora's test splits and the Synthea evaluation patients are never read):

- ``mts-dialog``: conversation -> the note section it was written for (section named);
- ``aci-bench``: visit conversation -> one division of its note (subjective, objective
  exam, objective results, assessment and plan; ``reference.divide_aci_note``);
- ``meqsum``: a patient's message -> its one-question summary;
- ``synthea``: a patient's latest 1-3 notes -> three texts built from the structured FHIR
  truth: a one-line synopsis, the active problem list, the current medications with the
  dates they were started.

A development split is held out of the training sets, chosen by a hash of the record id
(stable across runs and machines): 100 MTS-Dialog pairs and 10 ACI-Bench visits. It
chooses the epoch, the base and the quantization; the validation sets are scored once,
on the final artifact (``noteward eval summarize``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noteward.core.errors import UsageError
from noteward.llm import reference
from noteward.training import data as data_mod

DEV_SIZES = {"mts-dialog": 100, "aci-bench": 10}
DEFAULT_LIMITS = {"mts-dialog": 100_000, "aci-bench": 100_000, "meqsum": 400, "synthea": 300}
SOURCES = ("mts-dialog", "aci-bench", "meqsum", "synthea")
CHARS_PER_TOKEN = data_mod.CHARS_PER_TOKEN


@dataclass
class ReferenceExample:
    """One reference-v2 example: the user turn and the reference text to write."""

    source: str
    kind: str  # section, division or Synthea task (for balance reporting)
    ref: str  # opaque id inside the source ('mts:12', 'aci:D2N001:subjective')
    user: str
    reference: str
    source_text: str = ""  # what the checker grounds the output in (dev evaluation)
    sex: str | None = None
    age_band: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # what balance_report and balanced_sample read from grounded-v1 examples
    bullets: tuple[()] = ()

    @property
    def patient(self) -> str:
        parts = self.ref.split(":")
        return parts[1] if len(parts) > 2 else self.ref

    def prompt(self) -> str:
        """The user turn, exactly as the evaluation sends it."""
        return self.user

    def target(self) -> str:
        """The assistant turn: the reference text (the end-of-turn token is added by the trainer)."""
        return self.reference

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "ref": self.ref,
            "sex": self.sex,
            "age_band": self.age_band,
            "prompt": self.user,
            "target": self.reference,
            "source_text": self.source_text,
        }


def dev_ids(ids: Iterable[str], n: int) -> set[str]:
    """The ``n`` ids with the smallest sha256 (a fixed, order-independent choice)."""
    return set(sorted(set(ids), key=lambda i: hashlib.sha256(i.encode("utf-8")).hexdigest())[:n])


def _split_ok(rid: str, dev: set[str], split: str) -> bool:
    return (rid in dev) == (split == "dev")


def _clean_target(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _fits(user: str, target: str, max_tokens: int) -> bool:
    return (len(user) + len(target) + 60) / CHARS_PER_TOKEN <= max_tokens


# ---- MTS-Dialog -----------------------------------------------------------------------


def mts_dialog(data_dir: Path, max_tokens: int, split: str = "train") -> Iterator[ReferenceExample]:
    """Conversation -> its note section, the section named in the prompt."""
    path = data_mod._train_file(data_dir, "mts-dialog")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    dev = dev_ids((str(r.get("ID", "")) for r in rows), DEV_SIZES["mts-dialog"])
    for row in rows:
        rid = str(row.get("ID", ""))
        if not _split_ok(rid, dev, split):
            continue
        header = (row.get("section_header") or "").strip().upper()
        dialogue = row.get("dialogue") or ""
        target = _clean_target(row.get("section_text") or "")
        user = reference.mts_prompt(dialogue, header)
        if not target or not dialogue.strip() or not _fits(user, target, max_tokens):
            continue
        yield ReferenceExample("mts-dialog", header.lower(), f"mts:{rid}", user, target, dialogue)


# ---- ACI-Bench ------------------------------------------------------------------------


def aci_bench(data_dir: Path, max_tokens: int, split: str = "train") -> Iterator[ReferenceExample]:
    """Visit conversation -> each division of its note (ACI-Bench's own division rule)."""
    rows = list(data_mod._aci_rows(data_dir))
    dev = dev_ids((r.get("encounter_id", "") for r, _s, _b in rows), DEV_SIZES["aci-bench"])
    for row, sex, band in rows:
        enc = row.get("encounter_id", "")
        if not _split_ok(enc, dev, split):
            continue
        dialogue = row.get("dialogue") or ""
        for division, text in reference.divide_aci_note(row.get("note") or "").items():
            target = _clean_target(text)
            user = reference.aci_prompt(dialogue, division)
            if not target or not _fits(user, target, max_tokens):
                continue
            yield ReferenceExample(
                "aci-bench", division, f"aci:{enc}:{division}", user, target, dialogue, sex, band,
                {"visit": enc, "note": row.get("note") or ""},
            )


# ---- MeQSum ---------------------------------------------------------------------------


def meqsum(data_dir: Path, max_tokens: int) -> Iterator[ReferenceExample]:
    """A patient's message -> its one-question summary."""
    path = data_mod._train_file(data_dir, "meqsum")
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            row = json.loads(line)
            message, target = str(row.get("CHQ", "")), _clean_target(str(row.get("Summary", "")))
            user = reference.question_prompt(message)
            if message.strip() and target and _fits(user, target, max_tokens):
                yield ReferenceExample("meqsum", "question", f"meqsum:{n}", user, target, message)


# ---- Synthea --------------------------------------------------------------------------

_SOCIAL_TAGS = ("(finding)", "(situation)", "(person)", "(social concept)")


def _is_problem(display: str) -> bool:
    """A diagnosis, not a social or administrative finding ('full-time employment (finding)')."""
    low = display.strip().lower()
    return bool(low) and not low.endswith(_SOCIAL_TAGS)


def _chief_complaints(note: str) -> list[str]:
    out: list[str] = []
    in_cc = False
    for raw in note.split("\n"):
        line = raw.strip()
        if line.startswith("#"):
            in_cc = line.lstrip("#").strip().lower() == "chief complaint"
            continue
        if in_cc and line.startswith("- "):
            out.append(line[2:].strip().lower())
    return out


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def synthea_targets(p: dict[str, Any], end: int, span: int) -> tuple[str, list[tuple[str, str]]] | None:
    """(the notes shown, [(task, target)]) for the window of notes ending at ``end``.

    Only facts the shown notes state are targets, so the model learns to write what it can
    read; a medication's start date is written when it falls on one of the shown notes'
    dates, else "started before <first shown date>".
    """
    notes = p["notes"][max(0, end - span + 1) : end + 1]
    if not notes:
        return None
    date = notes[-1][0]
    shown_dates = {d for d, _t in notes}
    source = "\n\n".join(f"Note of {d}:\n{t.strip()}" for d, t in notes)
    low = source.lower()
    problems: list[str] = []
    meds: dict[str, str] = {}
    for f in p["facts"]:
        if not f.display or f.start > date or (f.end is not None and f.end <= date):
            continue
        name = data_mod.clean_display(f.display)
        if name.lower() not in low:
            continue
        if f.kind == "condition" and _is_problem(f.display) and name not in problems:
            problems.append(name)
        elif f.kind == "medication" and name.lower() in notes[-1][1].lower():
            meds[name] = min(meds.get(name, f.start), f.start)
    if not problems and not meds:
        return None
    first = min(shown_dates)
    med_lines = [
        f"- {name} (started {start})" if start in shown_dates else f"- {name} (started before {first})"
        for name, start in sorted(meds.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    who = ""
    birth = str(p.get("birth") or "")
    if birth[:4].isdigit() and date[:4].isdigit():
        age = int(date[:4]) - int(birth[:4]) - (1 if date[5:10] < birth[5:10] else 0)
        who = f"{age}-year-old {p.get('sex') or 'patient'}"
    synopsis = (who or "Patient") + (f" with {_and([x.lower() for x in problems[:3]])}" if problems else "")
    complaints = _chief_complaints(notes[-1][1])
    synopsis += f", seen on {date}" + (f" for {_and(complaints)}." if complaints else ".")
    targets = [("synopsis", synopsis[:1].upper() + synopsis[1:])]
    if problems:
        targets.append(("problems", "\n".join(f"- {x}" for x in problems)))
    if med_lines:
        targets.append(("medications", "\n".join(med_lines)))
    return source, targets


def synthea(data_dir: Path, max_tokens: int, seed: int = 0, per_patient: int = 40) -> Iterator[ReferenceExample]:
    """Windows of 1-3 notes -> synopsis, problem list, medications (not the eval patients)."""
    folder = data_mod._train_file(data_dir, "synthea")
    rng = random.Random(seed)
    patients = data_mod._synthea_patients(folder)  # evaluation patients already left out
    for n, pid in enumerate(sorted(patients)):
        p = patients[pid]
        ends = list(range(len(p["notes"])))
        rng.shuffle(ends)
        for end in ends[:per_patient]:
            built = synthea_targets(p, end, rng.choice((1, 2, 3)))
            if built is None:
                continue
            source, targets = built
            date = p["notes"][end][0]
            birth = str(p.get("birth") or "")
            band = data_mod.age_band(int(date[:4]) - int(birth[:4])) if birth[:4].isdigit() and date[:4].isdigit() else None
            for task, target in targets:
                user = reference.user_prompt("notes", source, task, date=date)
                if _fits(user, target, max_tokens):
                    yield ReferenceExample(
                        "synthea", task, f"synthea:p{n}:{end}:{task}", user, target, source, p.get("sex"), band
                    )


# ---- building -------------------------------------------------------------------------


def build_examples(
    sources: Iterable[str],
    data_dir: Path,
    *,
    seed: int = 0,
    max_tokens: int = 4000,
    limits: dict[str, int] | None = None,
    split: str = "train",
) -> list[ReferenceExample]:
    """The shuffled training set (``split='train'``) or the development set (``'dev'``).

    The development set holds only MTS-Dialog and ACI-Bench items (the ones the summary
    evaluation scores); MeQSum and Synthea are training-only.
    """
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    out: list[ReferenceExample] = []
    for source in sources:
        if source not in SOURCES:
            raise UsageError(f"The reference-v2 recipe has no source {source!r}; choose from {', '.join(SOURCES)}.")
        if split == "dev" and source not in DEV_SIZES:
            continue
        if source == "mts-dialog":
            pool: list[Any] = list(mts_dialog(data_dir, max_tokens, split))
        elif source == "aci-bench":
            pool = list(aci_bench(data_dir, max_tokens, split))
        elif source == "meqsum":
            pool = list(meqsum(data_dir, max_tokens))
        else:
            pool = list(synthea(data_dir, max_tokens, seed=seed))
        if split == "dev":
            out += pool  # whole, in file order: the dev split is small and fixed
        else:
            sampled: list[Any] = data_mod.balanced_sample(pool, limits[source], seed, "kind")
            out += sampled
    if split != "dev":
        random.Random(seed).shuffle(out)
    return out
