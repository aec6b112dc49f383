"""`noteward eval summarize`: quality of grounded summaries against references and key facts.

Data (read from ../shared/data, never copied): MTS-Dialog validation (dialogue → note
section), ACI-Bench validation (visit dialogue → full note), and the Synthea patients kept
out of training (63ee2253, 3af3708d, 79a66c97), imported into a temporary encrypted vault
that is deleted afterwards. Their key facts are the active conditions and medications in
the structured FHIR resources (read straight from the NDJSON, not from the vault).

Systems scored in the same run: lead-3, TextRank (sumy), Noteward's extractive skeleton
(no model), and for each base model both the full grounded summary (skeleton + checked
model bullets) and the model's own bullets alone (what fine-tuning must improve).

Metrics: ROUGE-L F1 (rouge-score, stemmed) where a reference exists; share of summary
sentences the aligner finds supported; hallucinated-number rate (numbers in the summary
absent from the source text, over all numbers in summaries); key-fact recall (Synthea:
share of key facts whose content words are ≥80% present in one summary sentence).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.models import Patient, SummarySentence
from noteward.llm.grounding import SourceIndex, content_words, numbers_in
from noteward.llm.summarizer import SourceNote, SummaryService
from noteward.settings import shared_data_dir

if TYPE_CHECKING:
    from noteward.store.vault import Vault

log = logging.getLogger(__name__)

SYNTHEA_EVAL_PATIENTS = ("63ee2253", "3af3708d", "79a66c97")
_SENT_RE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.MULTILINE)


@dataclass
class EvalItem:
    """One evaluation input: notes, optional reference summary, optional key facts."""

    dataset: str
    item_id: str
    notes: list[SourceNote]
    reference: str | None = None
    facts: list[dict[str, Any]] = field(default_factory=list)
    key_facts: list[str] = field(default_factory=list)


def _read_csv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_mts(data: Path, limit: int | None) -> list[EvalItem]:
    rows = _read_csv(data / "mts_dialog" / "MTS-Dialog-ValidationSet.csv")[: limit or None]
    return [
        EvalItem("mts_dialog", r["ID"], [SourceNote("input", r["dialogue"])], r["section_text"])
        for r in rows
    ]


def load_aci(data: Path, limit: int | None) -> list[EvalItem]:
    rows = _read_csv(data / "aci_bench" / "valid.csv")[: limit or None]
    return [
        EvalItem("aci_bench", r["encounter_id"], [SourceNote("input", r["dialogue"])], r["note"])
        for r in rows
    ]


def _fhir_key_facts(fhir_dir: Path, patient_prefix: str) -> list[str]:
    """Active conditions and medications of one patient, from the FHIR NDJSON files."""
    facts: list[str] = []

    def rows(kind: str) -> Iterable[dict[str, Any]]:
        for f in sorted(fhir_dir.glob(f"{kind}*.ndjson")):
            with f.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)

    def subject_ok(r: dict[str, Any]) -> bool:
        ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
        return ref.split("/")[-1].startswith(patient_prefix)

    for r in rows("Condition"):
        if not subject_ok(r):
            continue
        status = ((r.get("clinicalStatus") or {}).get("coding") or [{}])[0].get("code")
        if status == "active" and not r.get("abatementDateTime"):
            disp = (r.get("code") or {}).get("text") or (
                (r.get("code") or {}).get("coding") or [{}]
            )[0].get("display")
            if disp:
                facts.append(str(disp))
    for r in rows("MedicationRequest"):
        if not subject_ok(r) or r.get("status") != "active":
            continue
        cc = r.get("medicationCodeableConcept") or {}
        disp = cc.get("text") or (cc.get("coding") or [{}])[0].get("display")
        if disp:
            facts.append(str(disp))
    return list(dict.fromkeys(facts))


class SyntheaVault:
    """A temporary encrypted vault holding the shared Synthea patients (deleted on exit)."""

    def __init__(self, fhir_dir: Path) -> None:
        self.fhir_dir = fhir_dir
        self.tmp = Path(tempfile.mkdtemp(prefix="noteward-eval-"))
        self.vault: Vault | None = None

    def __enter__(self) -> Vault:
        import secrets

        from noteward.ingest.importer import import_paths
        from noteward.store.vault import Vault

        self.vault = Vault.create(self.tmp / "eval.nwv", secrets.token_urlsafe(24))
        import_paths(self.vault, [self.fhir_dir])
        return self.vault

    def __exit__(self, *exc: object) -> None:
        if self.vault is not None:
            self.vault.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def patient_by_prefix(vault: Vault, prefix: str) -> Patient:
    """The vault patient whose source id starts with ``prefix``."""
    for p in vault.patients():
        if (p.source_id or "").startswith(prefix):
            return p
    raise LookupError(f"patient {prefix} not in the shared Synthea data")


def load_synthea(
    vault: Vault, fhir_dir: Path, patients: Iterable[str] = SYNTHEA_EVAL_PATIENTS
) -> list[EvalItem]:
    items = []
    for prefix in patients:
        p = patient_by_prefix(vault, prefix)
        notes = [SourceNote(n.id, n.text, n.date) for n in vault.notes(p.id)]
        items.append(
            EvalItem(
                "synthea", prefix, notes, None, vault.facts(p.id), _fhir_key_facts(fhir_dir, prefix)
            )
        )
    return items


# ---- baselines ---------------------------------------------------------------------------


def _source_for_baseline(item: EvalItem, max_notes: int = 5) -> str:
    """Newest notes first (a clinician reads the latest visit first), at most ``max_notes``."""
    notes = sorted(item.notes, key=lambda n: n.date or "", reverse=True)[:max_notes]
    return "\n\n".join(n.text for n in notes)


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in _SENT_RE.findall(text) if len(content_words(s)) >= 2]


def lead3(item: EvalItem) -> list[str]:
    return sentences_of(_source_for_baseline(item))[:3]


class _RegexTokenizer:
    """sumy tokenizer without NLTK data (none may be downloaded at run time)."""

    language = "english"

    def to_sentences(self, paragraph: str) -> tuple[str, ...]:
        return tuple(sentences_of(paragraph))

    def to_words(self, sentence: str) -> tuple[str, ...]:
        return tuple(re.findall(r"[A-Za-z0-9']+", sentence))


def textrank(item: EvalItem, n: int = 3) -> list[str]:
    from sumy.nlp.stemmers import Stemmer
    from sumy.parsers.plaintext import PlaintextParser
    from sumy.summarizers.text_rank import TextRankSummarizer
    from sumy.utils import get_stop_words

    text = _source_for_baseline(item)
    parser = PlaintextParser.from_string(text, _RegexTokenizer())
    summ = TextRankSummarizer(Stemmer("english"))
    summ.stop_words = get_stop_words("english")
    return [str(s) for s in summ(parser.document, n)]


# ---- metrics -------------------------------------------------------------------------------


@dataclass
class Scores:
    """Accumulated metrics for one system."""

    rouge: list[float] = field(default_factory=list)
    sentences: int = 0
    supported: int = 0
    numbers: int = 0
    bad_numbers: int = 0
    shown_numbers: int = 0
    shown_bad_numbers: int = 0
    facts: int = 0
    facts_found: int = 0
    items: int = 0
    ms: float = 0.0

    def add(
        self,
        item: EvalItem,
        sents: list[SummarySentence] | list[str],
        index: SourceIndex,
        scorer: Any,
        ms: float = 0.0,
    ) -> None:
        texts = [s.text if isinstance(s, SummarySentence) else s for s in sents]
        summary = "\n".join(texts)
        source = "\n".join(n.text for n in item.notes)
        self.items += 1
        self.ms += ms
        if item.reference is not None:
            self.rouge.append(scorer.score(item.reference, summary)["rougeL"].fmeasure)
        for s in sents:
            self.sentences += 1
            if isinstance(s, SummarySentence):
                self.supported += bool(s.supported)
            else:
                self.supported += bool(index.align(s).supported)
        src_numbers = set(numbers_in(source))
        nums = numbers_in(summary)
        self.numbers += len(nums)
        self.bad_numbers += sum(1 for x in nums if x not in src_numbers)
        # what a clinician sees with unsupported sentences hidden
        shown = [
            s.text if isinstance(s, SummarySentence) else s
            for s in sents
            if (s.supported if isinstance(s, SummarySentence) else index.align(s).supported)
        ]
        shown_nums = numbers_in("\n".join(shown))
        self.shown_numbers += len(shown_nums)
        self.shown_bad_numbers += sum(1 for x in shown_nums if x not in src_numbers)
        if item.key_facts:
            sent_words = [set(content_words(t)) for t in texts]
            for fact in item.key_facts:
                fw = set(content_words(fact))
                self.facts += 1
                if fw and any(len(fw & sw) / len(fw) >= 0.8 for sw in sent_words):
                    self.facts_found += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "rougeL_f": round(sum(self.rouge) / len(self.rouge), 4) if self.rouge else None,
            "sentences": self.sentences,
            "supported_share": round(self.supported / self.sentences, 4)
            if self.sentences
            else None,
            "hallucinated_number_rate": round(self.bad_numbers / self.numbers, 4)
            if self.numbers
            else 0.0,
            "hallucinated_number_rate_supported_only": (
                round(self.shown_bad_numbers / self.shown_numbers, 4) if self.shown_numbers else 0.0
            ),
            "key_fact_recall": round(self.facts_found / self.facts, 4) if self.facts else None,
            "mean_ms": round(self.ms / self.items, 1) if self.items else None,
        }


def run_eval(
    *,
    limit: int | None = None,
    models: list[str] | None = None,
    data: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score every system on every dataset; returns {dataset: {system: metrics}}."""
    from rouge_score import rouge_scorer

    from noteward.llm.manifest import load_manifest

    data = data or shared_data_dir()
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    model_ids = models if models is not None else list(load_manifest().entries)
    fhir = data / "synthea_fhir"
    results: dict[str, dict[str, Scores]] = {}
    say = progress or (lambda _m: None)
    with SyntheaVault(fhir) as vault:
        datasets = {
            "mts_dialog": load_mts(data, limit),
            "aci_bench": load_aci(data, limit),
            "synthea": load_synthea(vault, fhir),
        }
    skeleton = SummaryService(use_model=False)
    services = {mid: SummaryService(model_id=mid) for mid in model_ids}
    try:
        for ds, items in datasets.items():
            res = results.setdefault(ds, {})
            for n, item in enumerate(items, 1):
                say(f"{ds} {n}/{len(items)}")
                index = SourceIndex({x.id: x.text for x in item.notes})
                for name, fn in (("lead-3", lead3), ("textrank", textrank)):
                    t = time.perf_counter()
                    sents = fn(item)
                    res.setdefault(name, Scores()).add(
                        item, sents, index, scorer, (time.perf_counter() - t) * 1000
                    )
                r = skeleton.summarize_notes(item.notes, item.facts)
                res.setdefault("noteward-extractive", Scores()).add(
                    item, r.sentences, index, scorer, r.timings["total_ms"]
                )
                for mid, svc in services.items():
                    r = svc.summarize_notes(item.notes, item.facts)
                    res.setdefault(f"noteward+{mid}", Scores()).add(
                        item, r.sentences, index, scorer, r.timings["total_ms"]
                    )
                    # the model's own bullets, each checked by the aligner
                    from noteward.llm.prompts import parse_output

                    own = []
                    for section, text, _ids in parse_output(r.model_output + "\n"):
                        al = index.align(text)
                        own.append(
                            SummarySentence(text, section, al.sources, al.support, al.supported)
                        )
                    res.setdefault(f"{mid} (model bullets only)", Scores()).add(
                        item, own, index, scorer, r.timings.get("model_ms", 0.0)
                    )
    finally:
        for svc in services.values():
            svc.close()
    return {
        "limit": limit,
        "models": {mid: svc.model_info["sha256"] for mid, svc in services.items()},
        "datasets": {
            ds: {name: sc.to_json() for name, sc in res.items()} for ds, res in results.items()
        },
    }
