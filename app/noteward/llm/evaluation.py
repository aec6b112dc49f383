"""`noteward eval summarize`: quality of grounded summaries against references and key facts.

Data (read from ../shared/data, never copied): MTS-Dialog validation (dialogue → note
section), ACI-Bench validation (visit dialogue → full note), and the Synthea patients kept
out of training (63ee2253, 3af3708d, 79a66c97), imported into a temporary encrypted vault
that is deleted afterwards. Their key facts are the active conditions and medications in
the structured FHIR resources (read straight from the NDJSON, not from the vault).

Systems scored in the same run: lead-3, TextRank (sumy), Noteward's extractive skeleton
(no model), and for each base model both the full grounded summary (skeleton + checked
model bullets) and the model's own bullets alone (what fine-tuning must improve).

Each model is also asked for its own text with the reference-v2 prompts
(``noteward.llm.reference``): the MTS-Dialog section named, each ACI-Bench note division
(scored per division and joined as the whole note). That row is the model alone, with the
number constraint on; ``--number-constraint both`` (the default) adds a second row, the same
prompts written with the constraint off, with every figure (its hallucinated-number rate is
also the "bad-off" column of the first row); "on" or "off" writes only one of them.

Metrics (``noteward.llm.metrics``): ROUGE-1/2/L and ROUGE-Lsum F1 (rouge-score 0.1.2,
stemmer on; Lsum over one sentence per line) where a reference exists; share of output
sentences the aligner (``noteward.llm.grounding``) finds supported; hallucinated-number
rate (numbers in the output absent from the source text, over all numbers in outputs);
the share of output 4-grams copied from the input; key-fact recall (Synthea: share of key
facts whose content words are >=80% present in one summary sentence). Every figure is
also given by sex and by age band where the data records them (ACI-Bench metadata,
Synthea patients; MTS-Dialog records neither).
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.models import Patient, SummarySentence
from noteward.ingest.fhir import concept_display, read_ndjson, subject_id
from noteward.llm import metrics
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
    sex: str | None = None
    age_band: str | None = None
    section: str | None = None  # MTS-Dialog section header ('GENHX')


def age_band(age: int | None) -> str | None:
    """Coarse age band for the group figures (the bands the training balance report uses)."""
    if age is None:
        return None
    return "0-17" if age < 18 else "18-39" if age < 40 else "40-64" if age < 65 else "65+"


def _read_csv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_mts(data: Path, limit: int | None) -> list[EvalItem]:
    rows = _read_csv(data / "mts_dialog" / "MTS-Dialog-ValidationSet.csv")[: limit or None]
    return [
        EvalItem(
            "mts_dialog", r["ID"], [SourceNote("input", r["dialogue"])], r["section_text"],
            section=r.get("section_header"),
        )
        for r in rows
    ]


def load_aci(data: Path, limit: int | None) -> list[EvalItem]:
    rows = _read_csv(data / "aci_bench" / "valid.csv")[: limit or None]
    meta_path = data / "aci_bench" / "valid_metadata.csv"
    meta = {m["encounter_id"]: m for m in _read_csv(meta_path)} if meta_path.exists() else {}
    items = []
    for r in rows:
        m = meta.get(r["encounter_id"], {})
        age = m.get("patient_age", "")
        items.append(
            EvalItem(
                "aci_bench", r["encounter_id"], [SourceNote("input", r["dialogue"])], r["note"],
                sex=(m.get("patient_gender") or "").strip().lower() or None,
                age_band=age_band(int(age)) if age.strip().isdigit() else None,
            )
        )
    return items


def _fhir_key_facts(fhir_dir: Path, patient_prefix: str) -> list[str]:
    """Active conditions and medications of one patient, from the FHIR NDJSON files."""
    facts: list[str] = []

    def rows(kind: str) -> Iterator[dict[str, Any]]:
        for f in sorted(fhir_dir.glob(f"{kind}*.ndjson")):
            for r in read_ndjson(f):
                if subject_id(r).startswith(patient_prefix):
                    yield r

    for r in rows("Condition"):
        status = ((r.get("clinicalStatus") or {}).get("coding") or [{}])[0].get("code")
        if status == "active" and not r.get("abatementDateTime") and concept_display(r.get("code")):
            facts.append(concept_display(r.get("code")))
    for r in rows("MedicationRequest"):
        if r.get("status") == "active" and concept_display(r.get("medicationCodeableConcept")):
            facts.append(concept_display(r.get("medicationCodeableConcept")))
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


def key_facts_found(facts: Sequence[str], texts: Sequence[str]) -> int:
    """How many of ``facts`` some summary sentence names: 80% of the fact's content words
    in one sentence. A SNOMED semantic tag ("(disorder)", "(finding)") is terminology, not
    content: the summary writes names without it, so it is not counted."""
    from noteward.llm.composition import clean_name

    sent_words = [set(content_words(t)) for t in texts]
    found = 0
    for fact in facts:
        fw = set(content_words(clean_name(fact)))
        if fw and any(len(fw & sw) / len(fw) >= 0.8 for sw in sent_words):
            found += 1
    return found


def load_synthea(
    vault: Vault, fhir_dir: Path, patients: Iterable[str] = SYNTHEA_EVAL_PATIENTS
) -> list[EvalItem]:
    items = []
    for prefix in patients:
        p = patient_by_prefix(vault, prefix)
        notes = [SourceNote(n.id, n.text, n.date) for n in vault.notes(p.id)]
        birth, last = str(p.birth_date or ""), max((str(n.date or "") for n in notes), default="")
        age = int(last[:4]) - int(birth[:4]) if birth[:4].isdigit() and last[:4].isdigit() else None
        items.append(
            EvalItem(
                "synthea", prefix, notes, None, vault.facts(p.id), _fhir_key_facts(fhir_dir, prefix),
                sex=(str(p.sex).lower() if p.sex else None), age_band=age_band(age),
            )
        )
    return items


def source_index(item: EvalItem) -> SourceIndex:
    """The checker for ``item``'s outputs: its source texts, and the record's sex where the
    data gives one (ACI-Bench metadata, Synthea), as the product's checker has the patient's.
    Without it every sentence with a pronoun is "sex unknown" and counted unsupported."""
    return SourceIndex({x.id: x.text for x in item.notes}, patient_sex=item.sex)


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
class ItemScore:
    """One output's figures (what ``Scores`` averages, overall and by sex and age band)."""

    sex: str | None
    age_band: str | None
    rouge: dict[str, float] | None
    sentences: int
    supported: int
    numbers: int
    bad_numbers: int
    shown_numbers: int
    shown_bad_numbers: int
    copied: float | None
    facts: int = 0
    facts_found: int = 0
    ms: float = 0.0
    # the same output written without the number constraint (model-only rows)
    numbers_free: int | None = None
    bad_numbers_free: int | None = None


def _rate(bad: int, total: int) -> float:
    return round(bad / total, 4) if total else 0.0


@dataclass
class Scores:
    """Accumulated metrics for one system (per item, so that groups can be reported)."""

    per_item: list[ItemScore] = field(default_factory=list)

    @property
    def items(self) -> int:
        return len(self.per_item)

    def add(
        self,
        item: EvalItem,
        sents: list[SummarySentence] | list[str],
        index: SourceIndex,
        scorer: Any = None,
        ms: float = 0.0,
        *,
        text: str | None = None,
        reference: str | None = None,
        free_text: str | None = None,
    ) -> ItemScore:
        """Score one output: its sentences (checked by the aligner unless already checked).

        ``text`` is the output as written (default: the sentences one per line) and
        ``reference`` what it is scored against (default: the item's); ``free_text`` the
        same output generated without the number constraint. ``scorer`` is unused (the
        metrics module keeps one scorer) and kept for callers that pass it.
        """
        del scorer
        texts = [s.text if isinstance(s, SummarySentence) else s for s in sents]
        summary = text if text is not None else "\n".join(texts)
        source = "\n".join(n.text for n in item.notes)
        ref = reference if reference is not None else item.reference
        verdicts = [
            bool(s.supported) if isinstance(s, SummarySentence) else index.align(s).supported for s in sents
        ]
        src_numbers = set(numbers_in(source))
        nums = numbers_in(summary)
        shown_nums = numbers_in("\n".join(t for t, ok in zip(texts, verdicts, strict=True) if ok))
        sc = ItemScore(
            sex=item.sex,
            age_band=item.age_band,
            rouge=metrics.rouge(ref, summary) if ref is not None else None,
            sentences=len(texts),
            supported=sum(verdicts),
            numbers=len(nums),
            bad_numbers=sum(1 for x in nums if x not in src_numbers),
            shown_numbers=len(shown_nums),
            shown_bad_numbers=sum(1 for x in shown_nums if x not in src_numbers),
            copied=metrics.copied_ngram_share(summary, source),
            ms=ms,
        )
        if free_text is not None:
            free = numbers_in(free_text)
            sc.numbers_free, sc.bad_numbers_free = len(free), sum(1 for x in free if x not in src_numbers)
        if item.key_facts:
            sc.facts += len(item.key_facts)
            sc.facts_found += key_facts_found(item.key_facts, texts)
        self.per_item.append(sc)
        return sc

    @staticmethod
    def summarize(rows: list[ItemScore]) -> dict[str, Any]:
        """The averaged figures of ``rows`` (see ``to_json``)."""
        rouge = {k: metrics.mean([r.rouge[k] for r in rows if r.rouge is not None]) for k in metrics.ROUGE_TYPES}
        sentences = sum(r.sentences for r in rows)
        facts = sum(r.facts for r in rows)
        free = [r for r in rows if r.numbers_free is not None]
        return {
            "items": len(rows),
            "rougeL_f": rouge["rougeL"],
            "rouge1_f": rouge["rouge1"],
            "rouge2_f": rouge["rouge2"],
            "rougeLsum_f": rouge["rougeLsum"],
            "sentences": sentences,
            "supported_share": round(sum(r.supported for r in rows) / sentences, 4) if sentences else None,
            "hallucinated_number_rate": _rate(sum(r.bad_numbers for r in rows), sum(r.numbers for r in rows)),
            "hallucinated_number_rate_supported_only": _rate(
                sum(r.shown_bad_numbers for r in rows), sum(r.shown_numbers for r in rows)
            ),
            "hallucinated_number_rate_no_constraint": (
                _rate(sum(r.bad_numbers_free or 0 for r in free), sum(r.numbers_free or 0 for r in free))
                if free
                else None
            ),
            "copied_4gram_share": metrics.mean([r.copied for r in rows if r.copied is not None]),
            "key_fact_recall": round(sum(r.facts_found for r in rows) / facts, 4) if facts else None,
            "mean_ms": round(sum(r.ms for r in rows) / len(rows), 1) if rows else None,
        }

    def to_json(self) -> dict[str, Any]:
        """Averages over all items, then the same by sex and by age band where recorded."""
        out = self.summarize(self.per_item)
        for key in ("sex", "age_band"):
            groups: dict[str, list[ItemScore]] = {}
            for r in self.per_item:
                value = getattr(r, key)
                if value:
                    groups.setdefault(str(value), []).append(r)
            if groups:
                out[f"by_{key}"] = {g: self.summarize(rows) for g, rows in sorted(groups.items())}
        return out


# ---- the model's own output (reference-v2 prompts) -------------------------------------------

MODEL_ONLY = " (model only, reference-v2 prompt)"
_HEADING_LINE = re.compile(r"^[^a-z]*:?$")


def output_sentences(text: str) -> list[str]:
    """The sentences of a written section (headings and one-word lines left out)."""
    out = []
    for line in metrics.one_sentence_per_line(text).split("\n"):
        line = line.lstrip("-*• ").strip()
        if line and not _HEADING_LINE.match(line) and len(content_words(line)) >= 2:
            out.append(line)
    return out


NUMBER_CONSTRAINT_MODES = ("on", "off", "both")
MODEL_ONLY_FREE = " (model only, reference-v2 prompt, number constraint off)"


@dataclass
class OwnText:
    """The model's own text for one part of an item, written with the number constraint
    (``on``), without it (``off``) or both; a text not asked for is None."""

    part: str
    on: str | None
    off: str | None
    reference: str | None
    ms_on: float = 0.0
    ms_off: float = 0.0


def _write(
    runtime: Any, user: str, source: str, max_tokens: int, number_constraint: str = "both"
) -> tuple[str | None, str | None, float, float]:
    """(text with the number constraint, text without it, ms of each) for one prompt.

    ``number_constraint`` says which to write ("on", "off" or "both"). For "both" the
    unconstrained run goes first: when it writes no number missing from the source, the
    constraint (which only masks tokens that would start, extend or end a number not in the
    source) would have let every one of its tokens through, so the constrained output is
    the same text and is not generated again (it is given the same ms).
    """
    from noteward.llm.runtime import ContextOverflowError

    if number_constraint not in NUMBER_CONSTRAINT_MODES:
        raise ValueError(f"number_constraint must be one of {NUMBER_CONSTRAINT_MODES}, not {number_constraint!r}")
    prompt = runtime.format_prompt(user)
    free_text: str | None = None
    free_ms = 0.0
    try:
        if number_constraint in ("off", "both"):
            free = runtime.generate(prompt, max_tokens=max_tokens, reuse_cache=True)
            free_text, free_ms = free.text.strip(), free.total_ms
            if number_constraint == "off":
                return None, free_text, 0.0, free_ms
            src = set(numbers_in(source))
            if all(x in src for x in numbers_in(free_text)):
                return free_text, free_text, free_ms, free_ms
        kept = runtime.generate(prompt, max_tokens=max_tokens, reuse_cache=True, numbers_from=(source,))
    except ContextOverflowError:
        empty = "" if number_constraint != "off" else None
        return empty, ("" if number_constraint != "on" else None), 0.0, 0.0
    return kept.text.strip(), free_text, kept.total_ms, free_ms


def _join(texts: list[str | None]) -> str | None:
    return None if any(t is None for t in texts) else "\n\n".join(t or "" for t in texts)


def model_only(
    runtime: Any, item: EvalItem, index: SourceIndex, max_tokens: int, number_constraint: str = "both"
) -> list[OwnText]:
    """The model's own text for ``item``, one ``OwnText`` per part.

    MTS-Dialog: the section named in the prompt (part "section"). ACI-Bench: each division
    the reference note has, then the whole note (the divisions joined in note order) as
    part "whole_note". ``number_constraint``: write with the constraint "on", "off" or "both".
    """
    from noteward.llm import reference

    del index
    source = "\n".join(n.text for n in item.notes)
    if item.dataset == "mts_dialog":
        on, off, ms_on, ms_off = _write(
            runtime, reference.mts_prompt(source, item.section or ""), source, max_tokens, number_constraint
        )
        return [OwnText("section", on, off, item.reference, ms_on, ms_off)]
    if item.dataset != "aci_bench":
        return []
    parts = []
    for division, ref in reference.divide_aci_note(item.reference or "").items():
        on, off, ms_on, ms_off = _write(
            runtime, reference.aci_prompt(source, division), source, max_tokens, number_constraint
        )
        parts.append(OwnText(division, on, off, ref, ms_on, ms_off))
    whole = OwnText(
        "whole_note", _join([p.on for p in parts]), _join([p.off for p in parts]), item.reference,
        sum(p.ms_on for p in parts), sum(p.ms_off for p in parts),
    )
    return [*parts, whole]


# ---- the targets (issue 11 parts 3 and 4), read off one run -----------------------

TARGETS = {
    "mts_rougeL": 0.28,  # model-only MTS-Dialog ROUGE-L (stretch 0.33, FLAN-T5-base)
    "mts_copied": 0.6,  # at most this share of its 4-grams copied from the dialogue
    "aci_rougeLsum": 0.34,  # model-only ACI-Bench whole note (copying the transcript: 0.306)
    "supported": 0.85,  # the model's own sentences the checker supports
    "survive": 0.70,  # below this the product is extractive again (part 3)
    "key_fact_recall": 1.0,  # Synthea, the product summary
}


def targets(res: dict[str, Any], model_id: str) -> list[dict[str, Any]]:
    """The issue's targets for ``model_id`` checked against ``run_eval``'s result:
    [{"check", "value", "bar", "ok"}]. A figure that is missing (the model or the dataset was
    not run) fails its check. The model-only rows are the constrained ones (``MODEL_ONLY``)."""
    ds = res.get("datasets", {})
    own = f"{model_id}{MODEL_ONLY}"
    mts = ds.get("mts_dialog", {}).get(own) or {}
    aci = ds.get("aci_bench", {}).get(own) or {}
    extractive = (ds.get("aci_bench", {}).get("noteward-extractive") or {}).get("rougeLsum_f")
    products = [ds.get(d, {}).get(f"noteward+{model_id}") or {} for d in ("mts_dialog", "aci_bench", "synthea")]
    out: list[dict[str, Any]] = []

    def check(name: str, value: Any, bar: str, ok: bool) -> None:
        out.append({"check": name, "value": value, "bar": bar, "ok": bool(value is not None and ok)})

    def at_least(v: Any, bar: float) -> bool:
        return v is not None and v >= bar

    rl, cp = mts.get("rougeL_f"), mts.get("copied_4gram_share")
    check("MTS-Dialog model-only ROUGE-L", rl, f">= {TARGETS['mts_rougeL']}", at_least(rl, TARGETS["mts_rougeL"]))
    check("MTS-Dialog copied-4-gram share", cp, f"<= {TARGETS['mts_copied']}", cp is not None and cp <= TARGETS["mts_copied"])
    lsum = aci.get("rougeLsum_f")
    check(
        "ACI-Bench whole-note model-only ROUGE-Lsum", lsum,
        f">= {TARGETS['aci_rougeLsum']} and > extractive skeleton {extractive}",
        at_least(lsum, TARGETS["aci_rougeLsum"]) and extractive is not None and lsum > extractive,
    )
    shares = [float(v) for v in (mts.get("supported_share"), aci.get("supported_share")) if v is not None]
    low = min(shares) if len(shares) == 2 else None
    check("model-only supported share (lower of MTS-Dialog, ACI-Bench)", low, f">= {TARGETS['supported']}",
          at_least(low, TARGETS["supported"]))
    check("model sentences surviving the checker (same figure)", low, f">= {TARGETS['survive']}",
          at_least(low, TARGETS["survive"]))
    rates = [float(v) for v in (m.get("hallucinated_number_rate") for m in (mts, aci, *products)) if v is not None]
    worst = max(rates) if len(rates) == 5 else None
    check("hallucinated numbers (model-only and product incl. Synthea, constraint on)", worst, "== 0", worst == 0)
    recall = products[2].get("key_fact_recall")
    check("Synthea key-fact recall (product)", recall, f">= {TARGETS['key_fact_recall']}",
          at_least(recall, TARGETS["key_fact_recall"]))
    return out


def run_eval(
    *,
    limit: int | None = None,
    models: list[str] | None = None,
    data: Path | None = None,
    progress: Callable[[str], None] | None = None,
    aci_limit: int | None = None,
    own_output: bool = True,
    own_max_tokens: int = 320,
    number_constraint: str = "both",
) -> dict[str, Any]:
    """Score every system on every dataset.

    Returns {"limit", "aci_limit", "models", "datasets": {dataset: {system: metrics}},
    "aci_divisions": {division: {system: metrics}}}. ``limit`` caps MTS-Dialog and (unless
    ``aci_limit`` is given) ACI-Bench; ``own_output`` adds each model's own text written
    from the reference-v2 prompts: with ``number_constraint`` "on" one row per model (the
    constraint on), "off" one row written without it (``MODEL_ONLY_FREE``), "both" (the
    default) the two rows, the first also carrying the hallucinated-number rate of the
    second. The product summaries always run with the constraint on.
    """
    if number_constraint not in NUMBER_CONSTRAINT_MODES:
        raise ValueError(f"number_constraint must be one of {NUMBER_CONSTRAINT_MODES}, not {number_constraint!r}")
    from noteward.llm.manifest import load_manifest

    data = data or shared_data_dir()
    model_ids = models if models is not None else list(load_manifest().entries)
    fhir = data / "synthea_fhir"
    results: dict[str, dict[str, Scores]] = {}
    divisions: dict[str, dict[str, Scores]] = {}
    say = progress or (lambda _m: None)
    with SyntheaVault(fhir) as vault:
        datasets = {
            "mts_dialog": load_mts(data, limit),
            "aci_bench": load_aci(data, aci_limit if aci_limit is not None else limit),
            "synthea": load_synthea(vault, fhir),
        }
    skeleton = SummaryService(use_model=False)
    services = {mid: SummaryService(model_id=mid) for mid in model_ids}
    try:
        for ds, items in datasets.items():
            res = results.setdefault(ds, {})
            for n, item in enumerate(items, 1):
                say(f"{ds} {n}/{len(items)}")
                index = source_index(item)
                for name, fn in (("lead-3", lead3), ("textrank", textrank)):
                    t = time.perf_counter()
                    sents = fn(item)
                    res.setdefault(name, Scores()).add(item, sents, index, None, (time.perf_counter() - t) * 1000)
                r = skeleton.summarize_notes(item.notes, item.facts)
                res.setdefault("noteward-extractive", Scores()).add(
                    item, r.sentences, index, None, r.timings["total_ms"]
                )
                for mid, svc in services.items():
                    r = svc.summarize_notes(item.notes, item.facts)
                    res.setdefault(f"noteward+{mid}", Scores()).add(
                        item, r.sentences, index, None, r.timings["total_ms"]
                    )
                    # the model's own bullets in the product, each checked by the aligner
                    from noteward.llm.prompts import parse_output

                    own = []
                    for section, text, _ids in parse_output(r.model_output + "\n"):
                        al = index.align(text)
                        own.append(SummarySentence(text, section, al.sources, al.support, al.supported))
                    res.setdefault(f"{mid} (model bullets only)", Scores()).add(
                        item, own, index, None, r.timings.get("model_ms", 0.0)
                    )
                    if not own_output:
                        continue
                    for own_text in model_only(svc.runtime, item, index, own_max_tokens, number_constraint):
                        part = own_text.part
                        target = res if part in ("section", "whole_note") else divisions.setdefault(part, {})
                        if own_text.on is not None:
                            target.setdefault(f"{mid}{MODEL_ONLY}", Scores()).add(
                                item, output_sentences(own_text.on), index, None, own_text.ms_on,
                                text=own_text.on, reference=own_text.reference, free_text=own_text.off,
                            )
                        if own_text.off is not None:
                            target.setdefault(f"{mid}{MODEL_ONLY_FREE}", Scores()).add(
                                item, output_sentences(own_text.off), index, None, own_text.ms_off,
                                text=own_text.off, reference=own_text.reference,
                            )
    finally:
        for svc in services.values():
            svc.close()
    out: dict[str, Any] = {
        "limit": limit,
        "aci_limit": aci_limit if aci_limit is not None else limit,
        "number_constraint": number_constraint if own_output else None,
        "models": {mid: svc.model_info["sha256"] for mid, svc in services.items()},
        "datasets": {ds: {name: sc.to_json() for name, sc in res.items()} for ds, res in results.items()},
        "aci_divisions": {d: {name: sc.to_json() for name, sc in res.items()} for d, res in divisions.items()},
    }
    if own_output and number_constraint != "off":
        out["targets"] = {mid: targets(out, mid) for mid in services}
    return out
