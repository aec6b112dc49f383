"""Training sets for the grounded summarizer, built from the shared corpora and a vault.

Every example is a list of source sentences (what the model sees, numbered ``[S1]..``) and
a list of bullets ``(section, text, cited ids)`` (what it must write), rendered with the
exact prompt and target text of ``noteward.llm.prompts`` ("grounded-v1").

Sources (train splits only; the corpora's test splits are never read, and the Synthea
patients the summary evaluation keeps out are skipped):

- ``mts-dialog``: a doctor-patient dialogue -> the note section written from it;
- ``aci-bench``: excerpts of a full visit dialogue -> a run of sentences of its note;
- ``meqsum``: a consumer health question -> its one-line summary;
- ``synthea``: a patient's recent notes -> the active conditions, current medications,
  allergies and plan items that the structured FHIR resources confirm, each citing the
  note sentence that states it;
- ``vault``: clinician-approved summaries of a vault, de-identified first.

A bullet is kept only when every number in it appears in its sources (the evaluation
counts any other number as hallucinated) and it shares words with the sentences it cites.
"""

from __future__ import annotations

import base64
import csv
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.errors import UsageError
from noteward.ingest.fhir import concept_display, read_ndjson, subject_id
from noteward.llm import prompts
from noteward.training.text import best_sources, content_words, split_dialogue, split_sentences

if TYPE_CHECKING:
    from noteward.store.vault import Vault

SOURCES = ("mts-dialog", "aci-bench", "meqsum", "synthea", "vault")

# Patients the summary evaluation keeps out of all training (FHIR id prefixes).
EVAL_PATIENT_PREFIXES = ("63ee2253", "3af3708d", "79a66c97")

# Files each source may read, relative to the shared data folder: train splits only.
TRAIN_FILES = {
    "mts-dialog": "mts_dialog/MTS-Dialog-TrainingSet.csv",
    "aci-bench": "aci_bench/train.csv",
    "meqsum": "meqsum/meqsum.jsonl",
    "synthea": "synthea_fhir",
}

MTS_SECTIONS = {
    "CC": "Problems",
    "GENHX": "Problems",
    "PASTMEDICALHX": "Problems",
    "DIAGNOSIS": "Problems",
    "ASSESSMENT": "Problems",
    "MEDICATIONS": "Medications",
    "ALLERGY": "Allergies",
    "EXAM": "Recent findings",
    "ROS": "Recent findings",
    "IMAGING": "Recent findings",
    "LABS": "Recent findings",
    "EDCOURSE": "Recent findings",
    "PLAN": "Plan",
    "DISPOSITION": "Plan",
}

ACI_SECTIONS = (
    ("CHIEF COMPLAINT", "Problems"),
    ("HISTORY OF PRESENT ILLNESS", "Problems"),
    ("MEDICAL HISTORY", "Problems"),
    ("PAST HISTORY", "Problems"),
    ("MEDICATIONS", "Medications"),
    ("ALLERG", "Allergies"),
    ("REVIEW OF SYSTEMS", "Recent findings"),
    ("VITALS", "Recent findings"),
    ("PHYSICAL EXAM", "Recent findings"),
    ("RESULTS", "Recent findings"),
    ("ASSESSMENT", "Plan"),
    ("PLAN", "Plan"),
    ("INSTRUCTIONS", "Plan"),
)

_NUM = re.compile(r"\d+(?:\.\d+)?")
# Rough characters per token for the SmolLM2/Gemma tokenizers on clinical English.
CHARS_PER_TOKEN = 3.6


@dataclass
class Example:
    """One training example: numbered source sentences and the grounded bullets to write."""

    source: str
    kind: str  # note type or section the example comes from (for balance reporting)
    ref: str  # opaque reference inside the source (row index), never a name or FHIR id
    sentences: list[str]
    bullets: list[tuple[str, str, list[int]]]
    sex: str | None = None
    age_band: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Bullets in the order the target writes them (headings in SECTIONS order).
        order = {name: i for i, name in enumerate(prompts.SECTIONS)}
        self.bullets = sorted(self.bullets, key=lambda b: order.get(b[0], len(order)))

    @property
    def patient(self) -> str:
        """The opaque patient/record group of ``ref`` ('synthea:p3:17' -> 'p3')."""
        parts = self.ref.split(":")
        return parts[1] if len(parts) > 2 else self.ref

    def prompt(self) -> str:
        """The user turn, exactly as inference builds it."""
        return prompts.build_user_prompt(self.sentences)

    def target(self) -> str:
        """The assistant turn (grounded-v1 bullets)."""
        return prompts.format_target(self.bullets)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "ref": self.ref,
            "sex": self.sex,
            "age_band": self.age_band,
            "prompt": self.prompt(),
            "target": self.target(),
        }


def numbers(text: str) -> set[str]:
    """Numbers written with digits in ``text`` (as strings, '10', '2.5')."""
    return set(_NUM.findall(text))


def age_band(age: int | None) -> str | None:
    """Coarse age band for balance reports (never an exact age or date)."""
    if age is None:
        return None
    if age < 18:
        return "0-17"
    if age < 40:
        return "18-39"
    if age < 65:
        return "40-64"
    return "65+"


def _ground(
    targets: list[tuple[str, str]], sentences: list[str], k: int = 2, verify: bool = False
) -> list[tuple[str, str, list[int]]]:
    """Cite each (section, text) in ``sentences``; drop ones with no support or new numbers.

    With ``verify`` a target is kept only when the product's aligner
    (``noteward.llm.grounding``) finds it supported by the sentences, so the model learns
    to write only what the checker will accept.
    """
    bags = [content_words(s) for s in sentences]
    source_numbers = numbers(" ".join(sentences))
    index = None
    if verify:
        from noteward.llm.grounding import SourceIndex

        index = SourceIndex({"source": "\n".join(sentences)})
    out: list[tuple[str, str, list[int]]] = []
    for section, text in targets:
        text = " ".join(text.split())
        if not text or not numbers(text) <= source_numbers:
            continue
        ids = best_sources(text, bags, k=k)
        if not ids:
            continue
        if index is not None and not index.align(text).supported:
            continue
        out.append((section, text, [i + 1 for i in ids]))
    return out


def _fits(sentences: list[str], bullets: list[tuple[str, str, list[int]]], max_tokens: int) -> bool:
    chars = sum(len(s) + 6 for s in sentences) + sum(len(b[1]) + 12 for b in bullets) + 420
    return chars / CHARS_PER_TOKEN <= max_tokens


def _excerpt(
    sentences: list[str], targets: list[tuple[str, str]], max_tokens: int, context: int = 1, verify: bool = False
) -> Example | None:
    """Keep only the source sentences the targets draw on (plus neighbours), renumbered."""
    bags = [content_words(s) for s in sentences]
    keep: set[int] = set()
    for _, text in targets:
        for i in best_sources(text, bags, k=2):
            keep.update(range(max(0, i - context), min(len(sentences), i + context + 1)))
    chosen = [sentences[i] for i in sorted(keep)]
    bullets = _ground(targets, chosen, verify=verify)
    if not bullets or not _fits(chosen, bullets, max_tokens):
        return None
    return Example("", "", "", chosen, bullets)  # caller fills source, kind and ref


# ---- MTS-Dialog -----------------------------------------------------------------------


def mts_dialog(data_dir: Path, max_tokens: int, verify: bool = False) -> Iterator[Example]:
    """Dialogue -> the note section written from it (MTS-Dialog training set)."""
    path = _train_file(data_dir, "mts-dialog")
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            header = (row.get("section_header") or "").strip().upper()
            section = MTS_SECTIONS.get(header, "Other")
            sentences = split_dialogue(row.get("dialogue") or "")
            targets = [(section, s) for s in split_sentences(row.get("section_text") or "")]
            bullets = _ground(targets, sentences, verify=verify)
            if not sentences or not bullets:
                continue
            if not _fits(sentences, bullets, max_tokens):
                ex = _excerpt(sentences, targets, max_tokens, verify=verify)
                if ex is None:
                    continue
                sentences, bullets = ex.sentences, ex.bullets
            yield Example("mts-dialog", header.lower(), f"mts:{row.get('ID', '')}", sentences, bullets)


# ---- ACI-Bench ------------------------------------------------------------------------


def _aci_section(header: str) -> str | None:
    h = header.upper()
    for key, section in ACI_SECTIONS:
        if key in h:
            return section
    return None


def _aci_note_targets(note: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    section: str | None = None
    for raw in note.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        letters = re.sub(r"[^A-Za-z]", "", line)
        if letters and letters.isupper() and len(line) < 60:
            section = _aci_section(line) or "Other"
            continue
        for s in split_sentences(line):
            out.append((section or "Other", s))
    return out


def _read_metadata(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["encounter_id"]: r for r in csv.DictReader(fh) if r.get("encounter_id")}


def _aci_rows(data_dir: Path) -> Iterator[tuple[dict[str, str], str | None, str | None]]:
    """ACI-Bench train visits with the patient's sex and age band from their metadata."""
    path = _train_file(data_dir, "aci-bench")
    meta = _read_metadata(path.parent / "train_metadata.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        m = meta.get(row.get("encounter_id", ""), {})
        sex = (m.get("patient_gender") or "").strip().lower() or None
        try:
            band = age_band(int(m.get("patient_age") or ""))
        except ValueError:
            band = None
        yield row, sex, band


def aci_bench(data_dir: Path, max_tokens: int, window: int = 6, verify: bool = False) -> Iterator[Example]:
    """Excerpts of a visit dialogue -> runs of ``window`` sentences of its note (train split)."""
    for row, sex, band in _aci_rows(data_dir):
        enc = row.get("encounter_id", "")
        sentences = split_dialogue(row.get("dialogue") or "")
        targets = _aci_note_targets(row.get("note") or "")
        for start in range(0, len(targets), window):
            ex = _excerpt(sentences, targets[start : start + window], max_tokens, verify=verify)
            if ex is None:
                continue
            ex.source, ex.kind, ex.ref = "aci-bench", row.get("dataset", "aci"), f"aci:{enc}:{start}"
            ex.sex, ex.age_band = sex, band
            yield ex


# The prompt sizes (estimated tokens) of the visit examples, largest first. The estimate
# (CHARS_PER_TOKEN) runs low on dialogue: 1024 estimated is about 1,300 real tokens, more
# than the product's 1,024-token cap, so the smaller sizes are the ones that match it.
VISIT_PROMPT_BUDGETS = (1024, 768, 512, 384)
# Room for the target: the product writes at most 160 new tokens.
VISIT_TARGET_CHARS = 500


def _visit_targets(
    targets: list[tuple[str, str]], lines: list[str], shown: list[str]
) -> list[tuple[str, str, list[int]]]:
    """Reference sentences the aligner finds supported by ``lines`` and that add to ``shown``.

    A sentence that restates one the product already shows (the skeleton) is left out, as
    the product would drop it; the rest (``_ground`` with the aligner's check) are taken
    round-robin across sections up to ``VISIT_TARGET_CHARS`` so that a long visit's plan is
    not crowded out by its history.
    """
    from noteward.llm.summarizer import similar_words

    fresh = [
        (section, text)
        for section, text in targets
        if not text.rstrip().endswith(":") and all(similar_words(text, s) < 0.8 for s in shown)
    ]
    by_section: dict[str, list[tuple[str, str, list[int]]]] = defaultdict(list)
    for bullet in _ground(fresh, lines, verify=True):
        by_section[bullet[0]].append(bullet)
    out: list[tuple[str, str, list[int]]] = []
    chars = 0
    queues = list(by_section.values())
    while any(queues):
        for queue in queues:
            if queue:
                bullet = queue.pop(0)
                if chars + len(bullet[1]) + 12 > VISIT_TARGET_CHARS:
                    queue.clear()
                    continue
                chars += len(bullet[1]) + 12
                out.append(bullet)
    return out


def aci_visits(data_dir: Path, max_tokens: int, prompts_per_visit: int = 2) -> Iterator[Example]:
    """Whole visits shaped like the product's own prompt (train split).

    The window examples of ``aci_bench`` show the model a few dialogue lines with dense
    targets; the product instead shows a long visit's skeleton and best-ranked lines up to
    its token cap. These examples build that very prompt (``summarizer.select`` and
    ``fit_prompt_lines``, token counts estimated from characters) at
    ``prompts_per_visit`` of the ``VISIT_PROMPT_BUDGETS`` sizes, with aligner-verified
    targets that the skeleton does not already say.
    """
    from noteward.llm.summarizer import SourceNote, fit_prompt_lines, prompt_candidates, select

    def count(line: str) -> float:
        return len(line) / CHARS_PER_TOKEN

    base = count(prompts.instruction_text()) + 24  # the chat template's own tokens
    for row, sex, band in _aci_rows(data_dir):
        enc = row.get("encounter_id", "")
        dialogue = row.get("dialogue") or ""
        if not dialogue.strip():
            continue
        sel = select([SourceNote("input", dialogue)])
        cands = prompt_candidates(sel)
        skeleton = sorted({" ".join(t.split()) for _s, _u, t, _i in sel.skeleton})
        targets = _aci_note_targets(row.get("note") or "")
        seen: set[int] = set()
        for budget in VISIT_PROMPT_BUDGETS[: max(0, prompts_per_visit)]:
            lines, _ids = fit_prompt_lines(cands, count, base, budget)
            lines = [" ".join(t.split()) for t in lines]
            if not lines or len(lines) in seen:
                continue
            seen.add(len(lines))
            bullets = _visit_targets(targets, lines, skeleton)
            if not bullets or not _fits(lines, bullets, max_tokens):
                continue
            ex = Example("aci-bench", f"{row.get('dataset', 'aci')}/visit", f"aci:{enc}:visit{budget}", lines, bullets)
            ex.sex, ex.age_band = sex, band
            yield ex


# ---- MeQSum ---------------------------------------------------------------------------


def meqsum(data_dir: Path, max_tokens: int, verify: bool = False) -> Iterator[Example]:
    """Consumer health question -> its one-line summary (under "Other")."""
    path = _train_file(data_dir, "meqsum")
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            row = json.loads(line)
            sentences = split_sentences(str(row.get("CHQ", "")))
            bullets = _ground([("Other", str(row.get("Summary", "")))], sentences, verify=verify)
            if sentences and bullets and _fits(sentences, bullets, max_tokens):
                yield Example("meqsum", "question", f"meqsum:{n}", sentences, bullets)


# ---- Synthea --------------------------------------------------------------------------








def clean_display(display: str) -> str:
    """'Chronic kidney disease stage 3 (disorder)' -> 'Chronic kidney disease stage 3'."""
    text = re.sub(r"\s*\((?:disorder|finding|situation|procedure|substance|morphologic abnormality)\)\s*$", "", display.strip(), flags=re.I)
    return text[:1].upper() + text[1:] if text else text


def is_eval_patient(fhir_id: str) -> bool:
    """True for the Synthea patients the summary evaluation keeps out of training."""
    return any(fhir_id.startswith(p) for p in EVAL_PATIENT_PREFIXES)


@dataclass
class _Fact:
    kind: str
    display: str
    start: str  # ISO date the fact begins
    end: str | None  # ISO date it ends (None: still true)


def _synthea_patients(folder: Path) -> dict[str, dict[str, Any]]:
    patients: dict[str, dict[str, Any]] = {}
    for res in read_ndjson(folder / "Patient.000.ndjson"):
        pid = str(res.get("id", ""))
        if not pid or is_eval_patient(pid):
            continue
        patients[pid] = {"sex": res.get("gender"), "birth": res.get("birthDate"), "notes": [], "facts": []}
    for res in read_ndjson(folder / "Condition.000.ndjson"):
        p = patients.get(subject_id(res))
        if p is not None:
            p["facts"].append(
                _Fact("condition", concept_display(res.get("code")), str(res.get("onsetDateTime", ""))[:10],
                      str(res["abatementDateTime"])[:10] if res.get("abatementDateTime") else None)
            )
    for res in read_ndjson(folder / "MedicationRequest.000.ndjson"):
        p = patients.get(subject_id(res))
        if p is not None:
            p["facts"].append(_Fact("medication", concept_display(res.get("medicationCodeableConcept")), str(res.get("authoredOn", ""))[:10], None))
    for res in read_ndjson(folder / "AllergyIntolerance.000.ndjson"):
        p = patients.get(subject_id(res))
        status = concept_display(res.get("clinicalStatus")) or next(
            (c.get("code") for c in (res.get("clinicalStatus") or {}).get("coding", [])), "active"
        )
        if p is not None and status != "inactive":
            p["facts"].append(_Fact("allergy", concept_display(res.get("code")), str(res.get("recordedDate", ""))[:10], None))
    for res in read_ndjson(folder / "DocumentReference.000.ndjson"):
        p = patients.get(subject_id(res))
        if p is None:
            continue
        for content in res.get("content", []):
            att = content.get("attachment", {})
            if str(att.get("contentType", "")).startswith("text/plain") and att.get("data"):
                text = base64.b64decode(att["data"]).decode("utf-8", errors="replace")
                p["notes"].append((str(res.get("date", ""))[:10], text))
                break
    for p in patients.values():
        p["notes"].sort(key=lambda n: n[0])
    return patients


def _plan_targets(notes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Plan bullets from the last note's '## Plan' lists (procedures, prescriptions)."""
    if not notes:
        return []
    out: list[tuple[str, str]] = []
    mode = ""
    for raw in notes[-1][1].split("\n"):
        line = raw.strip()
        low = line.lower()
        if low.startswith("the following procedures were conducted"):
            mode = "Procedure"
        elif low.startswith("the patient was prescribed"):
            mode = "Prescribed"
        elif low.startswith("the patient was placed on a careplan"):
            mode = "Care plan"
        elif line.startswith("- ") and mode:
            out.append(("Plan", f"{mode}: {clean_display(line[2:])}"))
        elif line:
            mode = ""
    return out


def _original_case(name: str, sentences: list[str]) -> str:
    """``name`` as the note spells it (first letter capitalized), else its cleaned display."""
    low = name.lower()
    for s in sentences:
        i = s.lower().find(low)
        if i >= 0:
            found = s[i : i + len(name)]
            return found[:1].upper() + found[1:]
    return name[:1].upper() + name[1:]


def _synthea_example(p: dict[str, Any], end: int, span: int, max_tokens: int) -> Example | None:
    notes = p["notes"][max(0, end - span + 1) : end + 1]
    date = notes[-1][0]
    per_note: list[list[str]] = []
    seen: set[str] = set()
    for _, text in reversed(notes):  # newest first, so duplicates keep their newest copy
        kept = []
        for s in split_sentences(text):
            if s.lower() not in seen:
                seen.add(s.lower())
                kept.append(s)
        per_note.insert(0, kept)
    all_low = [s.lower() for ss in per_note for s in ss]
    last_low = [s.lower() for s in per_note[-1]]
    targets: list[tuple[str, str]] = []
    done: set[str] = set()
    for f in p["facts"]:
        if not f.display or f.start > date or (f.end is not None and f.end <= date):
            continue
        name = clean_display(f.display).lower()
        key = f"{f.kind}:{name}"
        # Medications: only those the newest note lists (its current medication list).
        pool = last_low if f.kind == "medication" else all_low
        if key in done or not any(name in s for s in pool):
            continue
        done.add(key)
        section = {"condition": "Problems", "medication": "Medications", "allergy": "Allergies"}[f.kind]
        # Keep the note's own wording, semantic tag included ("hypertension (disorder)"):
        # the bullet then copies the source exactly.
        full = f.display.lower()
        said = full if any(full in s for s in pool) else name
        targets.append((section, _original_case(said, [s for ss in per_note for s in ss])))
    targets += _plan_targets(notes)
    # Trim whole oldest sentences until the example fits (the newest note is kept whole).
    while True:
        sentences = [s for ss in per_note for s in ss]
        bullets = _cite_verbatim(targets, sentences)
        if not bullets:
            return None
        if _fits(sentences, bullets, max_tokens):
            return Example("synthea", "note-window", "", sentences, bullets)
        if len(per_note) == 1:
            return None
        if per_note[0]:
            per_note[0].pop(0)
        else:
            per_note.pop(0)


def _cite_verbatim(targets: list[tuple[str, str]], sentences: list[str]) -> list[tuple[str, str, list[int]]]:
    """Cite the newest sentence that states the fact word for word; drop facts none states."""
    low = [s.lower() for s in sentences]
    grounded = _ground(targets, sentences, k=1)
    out: list[tuple[str, str, list[int]]] = []
    for section, text, _ids in grounded:
        name = text.split(": ", 1)[-1].lower() if section == "Plan" else text.lower()
        exact = [i for i, s in enumerate(low) if name in s]
        if exact:
            out.append((section, text, [exact[-1] + 1]))
    return out


def synthea(data_dir: Path, max_tokens: int, seed: int = 0, per_patient: int = 60) -> Iterator[Example]:
    """Windows of 1-3 consecutive notes -> the facts the FHIR resources confirm (not eval patients)."""
    folder = _train_file(data_dir, "synthea")
    rng = random.Random(seed)
    patients = _synthea_patients(folder)
    for n, pid in enumerate(sorted(patients)):
        p = patients[pid]
        ends = list(range(len(p["notes"])))
        rng.shuffle(ends)
        made = 0
        for end in ends:
            if made >= per_patient:
                break
            ex = _synthea_example(p, end, rng.choice((1, 2, 3)), max_tokens)
            if ex is None:
                continue
            made += 1
            ex.ref = f"synthea:p{n}:{end}"
            ex.sex = p["sex"]
            birth, when = str(p["birth"] or ""), p["notes"][end][0]
            if birth[:4].isdigit() and when[:4].isdigit():
                ex.age_band = age_band(int(when[:4]) - int(birth[:4]))
            yield ex


# ---- vault ----------------------------------------------------------------------------


def vault_examples(vault: Vault, max_tokens: int) -> Iterator[Example]:
    """Clinician-approved summaries from a vault, de-identified before they leave it.

    The notes a summary covers and its approved text both go through
    ``noteward.deid.export.training_text`` (the recall point, with the patient's own
    identifiers as known PHI) and its provenance is checked. Fails with a clear message when de-identification is not available, so no
    identifiable text ever reaches a training set.
    """
    try:
        from noteward.deid import export as deid_export
    except ImportError:
        raise UsageError(
            "The 'vault' training source needs de-identification (noteward.deid.export), "
            "which this installation lacks; train from the shared corpora instead."
        ) from None

    def deidentify(text: str, patient: Any = None) -> str:
        # recall-point text with its provenance, checked: raw vault text is refused
        return str(deid_export.require_recall_provenance(deid_export.training_text(text, patient))["text"])

    from noteward.store import summaries

    for row in summaries.approved(vault):
        patient = vault.patient(row.patient_id) if row.patient_id else None
        covers = row.covers
        note_ids = covers.get("note_ids", []) if isinstance(covers, dict) else []
        sentences: list[str] = []
        for nid in note_ids:
            note = vault.note(nid)
            sentences += split_sentences(deidentify(note.text, patient=patient))
        lines = []
        for line in deidentify(row.approved_text, patient=patient).splitlines():
            text = line.strip()
            if text and prompts.section_for_heading(text) is None and not re.match(r"^(?:[-*\u2022]|\d+[.)])\s", text):
                text = "- " + text  # approved prose: one bullet per line
            lines.append(text)
        targets = [(section, text) for section, text, _ in prompts.parse_output("\n".join(lines) + "\n")]
        ex = _excerpt(sentences, targets, max_tokens) if sentences and targets else None
        if ex is not None:
            ex.source, ex.kind, ex.ref = "vault", "approved-summary", f"vault:{row.id}"
            yield ex


# ---- building and balancing -----------------------------------------------------------


def _train_file(data_dir: Path, source: str) -> Path:
    path = data_dir / TRAIN_FILES[source]
    if "test" in path.name.lower():
        raise UsageError(f"Refusing to read a test split ({path.name}).")
    if not path.exists():
        raise UsageError(
            f"Training source {source!r} needs {path}, which does not exist. Point "
            "NOTEWARD_SHARED_DATA (or --data-dir) at the shared data folder."
        )
    return path


def parse_sources(spec: str) -> list[str]:
    """'mts-dialog,synthea' -> ['mts-dialog', 'synthea'] (unknown names are a usage error)."""
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    bad = [s for s in names if s not in SOURCES]
    if bad or not names:
        raise UsageError(
            f"Unknown training source(s): {', '.join(bad) or '(none given)'}. "
            f"Choose from {', '.join(SOURCES)}, separated by commas."
        )
    return list(dict.fromkeys(names))


def balanced_sample(examples: list[Example], limit: int, seed: int, key: str = "kind") -> list[Example]:
    """Up to ``limit`` examples drawn round-robin across groups (note type or section).

    Round-robin caps the big groups (MTS-Dialog's family/social history is 30x its labs)
    without repeating the small ones, so every group keeps all it has up to a fair share.
    """
    rng = random.Random(seed)
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[str(getattr(ex, key) or "unknown")].append(ex)
    for g in groups.values():
        rng.shuffle(g)
    out: list[Example] = []
    order = sorted(groups)
    while len(out) < limit and any(groups.values()):
        for name in order:
            if groups[name] and len(out) < limit:
                out.append(groups[name].pop())
    return out


DEFAULT_LIMITS = {"mts-dialog": 900, "aci-bench": 400, "meqsum": 150, "synthea": 240, "vault": 500}


def build_examples(
    sources: Iterable[str],
    data_dir: Path,
    *,
    seed: int = 0,
    max_tokens: int = 640,
    limits: dict[str, int] | None = None,
    vault: Vault | None = None,
    verify: bool = False,
    aci_window: int = 6,
    aci_visit_prompts: int = 0,
) -> list[Example]:
    """The shuffled, balanced training set for ``sources``.

    ``verify``: keep only reference sentences the product's aligner accepts (see ``_ground``).
    ``aci_window``: note sentences per ACI-Bench example (more gives longer targets).
    ``aci_visit_prompts``: whole-visit ACI-Bench examples per visit, shaped like the
    product's prompt (see ``aci_visits``; 0 leaves them out).
    """
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    out: list[Example] = []
    for source in sources:
        if source == "mts-dialog":
            pool = list(mts_dialog(data_dir, max_tokens, verify))
            out += balanced_sample(pool, limits[source], seed, "kind")
        elif source == "aci-bench":
            visits = list(aci_visits(data_dir, max_tokens, aci_visit_prompts)) if aci_visit_prompts else []
            visits = balanced_sample(visits, limits[source], seed, "sex")
            pool = list(aci_bench(data_dir, max_tokens, window=aci_window, verify=verify))
            out += visits + balanced_sample(pool, max(0, limits[source] - len(visits)), seed, "sex")
        elif source == "meqsum":
            pool = list(meqsum(data_dir, max_tokens, verify))
            out += balanced_sample(pool, limits[source], seed, "kind")
        elif source == "synthea":
            pool = list(synthea(data_dir, max_tokens, seed=seed))
            out += balanced_sample(pool, limits[source], seed, "patient")
        elif source == "vault":
            if vault is None:
                raise UsageError("The 'vault' training source needs a vault: give --vault and a passphrase.")
            out += list(vault_examples(vault, max_tokens))[: limits[source]]
    random.Random(seed).shuffle(out)
    return out


def balance_report(examples: list[Example]) -> dict[str, Any]:
    """Counts by source, note type/section, sex and age band (no identifiers)."""
    by: dict[str, Counter[str]] = {k: Counter() for k in ("source", "kind", "sex", "age_band", "section")}
    for ex in examples:
        by["source"][ex.source] += 1
        by["kind"][f"{ex.source}/{ex.kind}"] += 1
        by["sex"][f"{ex.source}/{ex.sex or 'not recorded'}"] += 1
        by["age_band"][f"{ex.source}/{ex.age_band or 'not recorded'}"] += 1
        for section, _, _ in ex.bullets:
            by["section"][section] += 1
    return {"examples": len(examples), **{k: dict(sorted(v.items())) for k, v in by.items()}}
