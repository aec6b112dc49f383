"""Grounded patient summaries: a checked extractive skeleton, then the model within a budget.

How a long record fits the context — retrieval-driven selection, not map-reduce
-------------------------------------------------------------------------------
Every note is split into source units (sentences, list items, clauses) with offsets;
identical units repeated across visits are collapsed to their latest occurrence. From them a
*skeleton* is selected per section, without the model:

- Problems / Medications / Allergies: the patient's active structured facts (FHIR
  conditions, medications, allergies from ``vault.facts``) located verbatim in the notes —
  latest note first — so each one cites a note span; without facts (a single text file), the
  units under matching note headers, or for unstructured text (dialogues) the most
  informative sentences ranked by idf-weighted clinical content and classified by cue words.
- Recent findings / Plan: the units of those sections in the most recent notes.

Skeleton sentences are copied text, so they align exactly (support 1.0) and are streamed
to ``on_sentence`` at once: the first sentence is on screen in milliseconds, long before
the model's first token. The model then gets the grounded-v1 prompt with the skeleton plus
the next best-ranked units, up to a token budget (``prompt_token_cap``, never more than
``n_ctx`` minus the generation budget), and writes at most ``max_new_tokens``; it can only
write numbers found in the prompt's sentences (``noteward.llm.constraints``). Each bullet
it writes is aligned by ``noteward.llm.grounding`` as soon as its line ends; bullets that
repeat a skeleton sentence are dropped, new ones are added with their verdict
(unsupported ones are kept but flagged).

Why not map-reduce: on two CPU cores a 135M-270M model reads 200-400 prompt tokens/s, so
summarizing the 708-note record (about 300,000 tokens) chunk by chunk would take many
minutes against a 60 s target, and small base models do not reduce reliably (they copy).
Selection costs one pass of plain Python over the text (about a second for 1.1 M
characters), keeps the prompt the same size whatever the record's length, and the repeated
boilerplate of long records collapses in the de-duplication step.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from noteward.core.errors import NotewardError
from noteward.core.ids import new_id
from noteward.core.models import SECTIONS, SummarySentence
from noteward.llm import prompts
from noteward.llm.grounding import (
    SourceIndex,
    SourceUnit,
    content_words,
    drugs_in,
    numbers_in,
    rules,
    split_units,
)

if TYPE_CHECKING:
    from noteward.store.vault import Vault

log = logging.getLogger(__name__)

EXTRACTIVE_MODEL_ID = "extractive (no model)"
OnSentence = Callable[[SummarySentence], None]
OnToken = Callable[[str], None]


@dataclass(frozen=True)
class SourceNote:
    """A note as the summarizer sees it (vault notes, or one text file as note "input")."""

    id: str
    text: str
    date: str | None = None


@dataclass
class SummaryResult:
    """A grounded summary with what it covers, which model wrote it and how long it took."""

    patient: str | None
    sentences: list[SummarySentence]
    covers: dict[str, Any]
    model: dict[str, str]
    timings: dict[str, float]
    prompt_version: str = prompts.PROMPT_VERSION
    summary_id: str | None = None
    model_output: str = ""  # the raw model text (not shown; kept for evaluation)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of issue 3 (patient, model, sentences, timings)."""
        t = self.timings
        return {
            "patient": self.patient,
            "model": {"id": self.model["id"], "sha256": self.model["sha256"]},
            "sentences": [s.to_json() for s in self.sentences],
            "timings": {
                "retrieval_ms": round(float(t.get("retrieval_ms", 0.0)), 1),
                "prompt_tokens": int(t.get("prompt_tokens", 0)),
                "ttft_ms": round(float(t.get("ttft_ms", 0.0)), 1),
                "generated_tokens": int(t.get("generated_tokens", 0)),
                "total_ms": round(float(t.get("total_ms", 0.0)), 1),
            },
        }

    def text(self, include_unsupported: bool = True) -> str:
        """Plain text under section headings (for display and ROUGE)."""
        out: list[str] = []
        for section in SECTIONS:
            items = [
                s
                for s in self.sentences
                if s.section == section and (include_unsupported or s.supported)
            ]
            if items:
                out.append(f"{section}:")
                out.extend(f"- {s.text}" for s in items)
        return "\n".join(out)


# ---- selection ------------------------------------------------------------------------


@dataclass
class _Candidate:
    unit: SourceUnit
    section: str
    score: float
    recency: int  # index of the note in date order (higher = newer)


_PRESENTING_RE = re.compile(
    r"\b(presenting|presents|presented|complains?|complaining)\b", re.IGNORECASE
)


def _skip_patterns() -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in rules()["skip_patterns"]]


def classify(text: str, header_section: str | None) -> str:
    """The summary section for a unit: its header's, refined by cue words."""
    if _PRESENTING_RE.search(text) and header_section in (None, "Plan", "Problems"):
        return "Recent findings"
    stripped = text.rstrip(" .;").lower()
    for suffix, section in rules().get("suffix_sections", {}).items():
        if stripped.endswith(suffix):
            return str(section)
    if header_section:
        return header_section
    low = text.lower()
    best, best_n = "Other", 0
    for section, cues in rules()["keyword_sections"].items():
        n = sum(1 for c in cues if re.search(r"(?<![a-z])" + re.escape(c) + r"(?![a-z])", low))
        if n > best_n:
            best, best_n = section, n
    if drugs_in(text) and best in ("Other", "Problems"):
        best = "Medications"
    return best


@dataclass
class _Selection:
    index: SourceIndex
    skeleton: list[
        tuple[str, SourceUnit | None, str, int | None]
    ]  # (section, unit, text, unit idx)
    extra: list[int]  # further unit indexes for the prompt, best first


def _facts_active(facts: Sequence[Mapping[str, Any]], kind: str) -> list[str]:
    out: list[str] = []
    for f in facts:
        if f.get("kind") != kind:
            continue
        status = str(f.get("status") or "").lower()
        if status in (
            "resolved",
            "inactive",
            "stopped",
            "completed",
            "entered-in-error",
            "cancelled",
            "refuted",
        ):
            continue
        if kind == "condition" and f.get("end_date"):
            continue
        disp = str(f.get("display") or "").strip()
        if disp and disp.lower() not in (d.lower() for d in out):
            out.append(disp)
    return out


def select(
    notes: Sequence[SourceNote],
    facts: Sequence[Mapping[str, Any]] = (),
    *,
    unit_cache: dict[tuple[str, int], list[SourceUnit]] | None = None,
    caps: Mapping[str, int] | None = None,
) -> _Selection:
    """Pick the skeleton and the ranked extra units from the notes (no model involved)."""
    caps = {
        "Problems": 10,
        "Medications": 10,
        "Allergies": 3,
        "Recent findings": 4,
        "Plan": 5,
        "Other": 3,
        **(caps or {}),
    }
    skips = _skip_patterns()
    ordered = sorted(enumerate(notes), key=lambda p: ((p[1].date or ""), p[0]))
    latest: dict[str, _Candidate] = {}
    for recency, (_, note) in enumerate(ordered):
        key = (note.id, hash(note.text))
        units = unit_cache.get(key) if unit_cache is not None else None
        if units is None:
            units = split_units(note.id, note.text)
            if unit_cache is not None:
                unit_cache[key] = units
        for u in units:
            body = " ".join(u.text.split())
            if any(p.match(body) for p in skips):
                continue
            words = content_words(body)
            section = classify(body, u.section)
            if (len(words) < 2 or len(body.split()) < 2) and section not in (
                "Allergies",
                "Medications",
            ):
                continue  # lone names, dates, fragments
            if len(words) < 1:
                continue
            latest[body.lower()] = _Candidate(u, section, 0.0, recency)
    cands = sorted(latest.values(), key=lambda c: (c.recency, c.unit.ordinal))
    index = SourceIndex({n.id: n.text for n in notes}, [c.unit for c in cands])
    n_notes = max(1, len(ordered))
    for c in cands:
        uniq = set(content_words(c.unit.text))
        info = math.fsum(index.idf(w) for w in uniq) / (1 + 0.15 * max(0, len(uniq) - 25))
        bonus = 1.0 + 0.5 * bool(numbers_in(c.unit.text)) + 0.5 * bool(drugs_in(c.unit.text))
        bonus *= 1.0 + 0.2 * (c.section != "Other")
        c.score = info * bonus * (0.5 + 0.5 * (c.recency + 1) / n_notes)

    skeleton: list[tuple[str, SourceUnit | None, str, int | None]] = []
    used_units: set[int] = set()
    seen_text: set[str] = set()

    def add(section: str, unit_idx: int | None, text: str, fact: bool = False) -> None:
        key = " ".join(text.lower().split())
        if key in seen_text or sum(1 for s in skeleton if s[0] == section) >= caps[section]:
            return
        if not fact and any(s[0] == section and similar_words(text, s[2]) >= 0.9 for s in skeleton):
            return  # restates (or is contained in) a sentence already chosen
        seen_text.add(key)
        unit = index.units[unit_idx] if unit_idx is not None else None
        if unit_idx is not None:
            used_units.add(unit_idx)
        skeleton.append((section, unit, text, unit_idx))

    unit_pos = {id(c.unit): i for i, c in enumerate(cands)}
    by_section: dict[str, list[int]] = {s: [] for s in SECTIONS}
    for i, c in enumerate(cands):
        by_section[c.section].append(i)
    max_recency = max((c.recency for c in cands), default=0)

    fact_kinds = {"Problems": "condition", "Medications": "medication", "Allergies": "allergy"}
    for section in SECTIONS:
        kind = fact_kinds.get(section)
        displays = _facts_active(facts, kind) if kind else []
        if displays:
            if section == "Problems":  # disorders before social findings
                displays.sort(
                    key=lambda d: 0 if "(disorder)" in d else 1 if "(finding)" not in d else 2
                )
            # structured facts are the record's own problem list: allow a longer list
            caps[section] = max(caps[section], 30 if section != "Allergies" else 8)
            for disp in displays:
                span = index.find_exact(disp)
                if span is None:
                    continue
                text = index.texts[span.note_id][span.start : span.end]
                add(section, None, text, fact=True)
            if any(s[0] == section for s in skeleton):
                continue
        members = by_section[section]
        if not members:
            continue
        has_headers = any(cands[i].unit.section for i in members)
        if has_headers and section in ("Medications", "Allergies", "Recent findings", "Plan"):
            # the most recent notes' own section, in note order
            recent = [
                i
                for i in members
                if cands[i].recency >= max_recency - (1 if section != "Plan" else 0)
            ]
            pool = recent or sorted(members, key=lambda i: -cands[i].recency)[: caps[section]]
            for i in sorted(pool, key=lambda i: (-cands[i].recency, cands[i].unit.ordinal)):
                add(section, unit_pos[id(cands[i].unit)], cands[i].unit.text)
        else:
            for i in sorted(members, key=lambda i: -cands[i].score)[: caps[section]]:
                if cands[i].score > 0:
                    add(section, unit_pos[id(cands[i].unit)], cands[i].unit.text)
    # unstructured text: keep only the best few overall so the skeleton stays a summary
    if not any(c.unit.section for c in cands) and not facts:
        budget = max(3, min(8, len(cands) // 6))
        ranked = sorted(
            (s for s in skeleton if s[3] is not None),
            key=lambda s: -cands[s[3]].score,  # type: ignore[index]
        )[:budget]
        keep = {id(s) for s in ranked}
        skeleton = [s for s in skeleton if id(s) in keep]
        skeleton.sort(key=lambda s: (cands[s[3]].recency, cands[s[3]].unit.ordinal))  # type: ignore[index]
        used_units = {s[3] for s in skeleton if s[3] is not None}
    extra = [
        i for i in sorted(range(len(cands)), key=lambda i: -cands[i].score) if i not in used_units
    ]
    return _Selection(index=index, skeleton=skeleton, extra=extra)


def prompt_candidates(sel: _Selection) -> list[tuple[str, int | None]]:
    """What the model may be shown, best first: the skeleton, then the ranked extra units."""
    out: list[tuple[str, int | None]] = [(t, u) for _s, _unit, t, u in sel.skeleton]
    out += [(sel.index.units[i].text, i) for i in sel.extra]
    return out


def fit_prompt_lines(
    candidates: Sequence[tuple[str, int | None]],
    count_tokens: Callable[[str], int | float],
    base: int | float,
    budget: int | float,
) -> tuple[list[str], list[int | None]]:
    """The candidates that fit in ``budget`` tokens after ``base`` (the empty prompt), in order.

    Shared with fine-tuning (``noteward.training.data``), which builds training prompts the
    same way so the model is trained on prompts shaped like the ones it is given.
    """
    lines: list[str] = []
    ids: list[int | None] = []
    used = base
    for text, uidx in candidates:
        line = f"[S{len(lines) + 1}] {' '.join(text.split())}\n"
        n = count_tokens(line)
        if used + n > budget:
            if used > base:
                break
            continue  # a single huge unit: try the next one
        lines.append(text)
        ids.append(uidx)
        used += n
    return lines, ids


# ---- the service -----------------------------------------------------------------------


def similar_words(a: str, b: str) -> float:
    """Shared content words over the shorter side's: 1.0 when one restates the other."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


@dataclass
class SummaryService:
    """Builds grounded summaries; one instance owns one model runtime (lazily started).

    ``model_id`` None means the settings' or manifest's default; ``threads`` None means the
    machine's cores. ``use_model=False`` gives the skeleton alone (no model is loaded).
    Both callbacks (``on_sentence``, ``on_token``) run on the calling thread, never on the
    model's owner thread (tokens are handed over in batches, every 50 ms at most); they
    must be quick and must not block.
    """

    model_id: str | None = None
    threads: int | None = None
    max_new_tokens: int = 160
    prompt_token_cap: int = 1024
    use_model: bool = True
    _runtime: Any = field(default=None, repr=False)
    _unit_cache: dict[tuple[str, int], list[SourceUnit]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from noteward.llm.manifest import resolve_model

        if not self.use_model:
            # provenance says honestly that no model wrote any of it
            self._resolved = None
            self.model_info = {"id": EXTRACTIVE_MODEL_ID, "sha256": ""}
            return
        self._resolved = resolve_model(self.model_id)  # fails early (ModelError) when missing
        self.model_info = {"id": self._resolved.id, "sha256": self._resolved.sha256}

    @property
    def runtime(self) -> Any:
        """The model runtime (started on first use)."""
        if self._runtime is None:
            from noteward.llm.runtime import ModelRuntime

            self._runtime = ModelRuntime(self._resolved, threads=self.threads).start()
        return self._runtime

    def close(self) -> None:
        """Free the model."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def __enter__(self) -> SummaryService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- entry points

    def summarize_patient(
        self,
        vault: Vault,
        patient_id: str,
        *,
        on_sentence: OnSentence | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
        save: bool = True,
    ) -> SummaryResult:
        """Summarize all of a patient's notes; saved in the vault with provenance."""
        t0 = time.perf_counter()
        patient = vault.patient(patient_id)
        notes = [SourceNote(n.id, n.text, n.date) for n in vault.notes(patient.id)]
        if not notes:
            raise NotewardError(
                "This patient has no notes to summarize. Import notes first (`noteward import`)."
            )
        facts = vault.facts(patient.id)
        result = self._summarize(notes, facts, patient.id, on_sentence, on_token, cancel, t0)
        if save:
            result.summary_id = save_summary(vault, result)
        return result

    def summarize_text(
        self,
        text: str,
        *,
        on_sentence: OnSentence | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
    ) -> SummaryResult:
        """Summarize one text (note id "input"; offsets index ``text``)."""
        t0 = time.perf_counter()
        if not text.strip():
            raise NotewardError("The input text is empty: give a file with the note to summarize.")
        return self._summarize(
            [SourceNote("input", text)], [], None, on_sentence, on_token, cancel, t0
        )

    def summarize_notes(
        self,
        notes: Sequence[SourceNote],
        facts: Sequence[Mapping[str, Any]] = (),
        *,
        on_sentence: OnSentence | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
    ) -> SummaryResult:
        """Summarize given notes (used by evaluation); nothing is saved."""
        return self._summarize(
            list(notes), facts, None, on_sentence, on_token, cancel, time.perf_counter()
        )

    # -- the pipeline

    def _summarize(
        self,
        notes: Sequence[SourceNote],
        facts: Sequence[Mapping[str, Any]],
        patient_id: str | None,
        on_sentence: OnSentence | None,
        on_token: OnToken | None,
        cancel: threading.Event | None,
        t0: float,
    ) -> SummaryResult:
        from noteward.core.errors import CancelledError

        cancel = cancel or threading.Event()
        sel = select(notes, facts, unit_cache=self._unit_cache)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        sentences: list[SummarySentence] = []
        timings: dict[str, float] = {"retrieval_ms": retrieval_ms}

        def emit(s: SummarySentence) -> None:
            sentences.append(s)
            if "first_sentence_ms" not in timings:
                timings["first_sentence_ms"] = (time.perf_counter() - t0) * 1000
            if on_sentence is not None:
                on_sentence(s)

        for section, _unit, text, uidx in sel.skeleton:
            if cancel.is_set():
                raise CancelledError("Cancelled.")
            al = sel.index.align(text, [uidx] if uidx is not None else [])
            emit(
                SummarySentence(
                    " ".join(text.split()), section, al.sources, al.support, al.supported
                )
            )

        model_text = ""
        if self.use_model:
            model_text = self._model_pass(sel, sentences, emit, on_token, cancel, timings)
        covers = {
            "note_ids": [n.id for n in notes],
            "date_range": _date_range(notes),
        }
        order = {s: i for i, s in enumerate(SECTIONS)}
        sentences.sort(key=lambda s: order.get(s.section, len(order)))
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        timings.setdefault("first_sentence_ms", timings["total_ms"])
        log.info(
            "summary: %d notes, %d sentences (%d supported), %.0f ms",
            len(notes),
            len(sentences),
            sum(s.supported for s in sentences),
            timings["total_ms"],
        )
        return SummaryResult(
            patient_id, sentences, covers, dict(self.model_info), timings, model_output=model_text
        )

    def build_prompt(self, sel: _Selection) -> tuple[str, list[int], int]:
        """The model prompt for a selection: (formatted prompt, unit index per [S] id, tokens)."""
        prompt, _lines, ids, tokens = self._prompt(sel)
        return prompt, ids, tokens

    def _prompt(self, sel: _Selection) -> tuple[str, list[str], list[int], int]:
        """``build_prompt`` plus the source sentences the prompt holds."""
        rt = self.runtime
        budget = min(self.prompt_token_cap, rt.prompt_budget(self.max_new_tokens))
        base = rt.count_tokens(rt.format_prompt(prompts.build_user_prompt([])))
        lines, ids = fit_prompt_lines(prompt_candidates(sel), rt.count_tokens, base, budget)
        prompt = rt.format_prompt(prompts.build_user_prompt(lines))
        tokens = len(rt.tokenize(prompt))
        # budgeting above is per line; the final count is authoritative
        while tokens > budget and lines:
            lines.pop()
            ids.pop()
            prompt = rt.format_prompt(prompts.build_user_prompt(lines))
            tokens = len(rt.tokenize(prompt))
        return prompt, lines, [(-1 if i is None else i) for i in ids], tokens

    def _model_pass(
        self,
        sel: _Selection,
        sentences: list[SummarySentence],
        emit: OnSentence,
        on_token: OnToken | None,
        cancel: threading.Event,
        timings: dict[str, float],
    ) -> str:
        from noteward.core.errors import CancelledError

        prompt, lines, unit_ids, n_tokens = self._prompt(sel)
        timings["prompt_tokens"] = n_tokens
        buf: list[str] = []
        done = [0]
        pending: list[tuple[str, str, list[int]]] = []
        lock = threading.Lock()

        forwarded = [0]  # how many of buf's pieces on_token has had

        def token(piece: str) -> None:  # runs on the model's owner thread
            with lock:
                buf.append(piece)
            if "\n" in piece:
                bullets = prompts.parse_output("".join(buf))
                with lock:
                    pending.extend(bullets[done[0] :])
                    done[0] = len(bullets)

        fut = self.runtime.submit(
            prompt,
            max_tokens=self.max_new_tokens,
            on_token=token,
            cancel=cancel,
            stop=("Summarize these clinical notes", "\nSentences:"),
            numbers_from=tuple(lines),  # numbers can only be copied from the sentences shown
        )

        def drain() -> None:
            # Callbacks run here, on the caller's thread, never on the model's: in the app
            # they emit Qt signals, which a plain Python thread must not do.
            with lock:
                items = list(pending)
                pending.clear()
                new_pieces = buf[forwarded[0] :]
                forwarded[0] = len(buf)
            if on_token is not None:
                for piece in new_pieces:
                    on_token(piece)
            for section, text, cites in items:
                self._add_model_bullet(sel, sentences, emit, section, text, cites, unit_ids)

        while True:
            try:
                res = fut.result(timeout=0.05)
                break
            except TimeoutError:
                drain()
            except CancelledError:
                raise
        text = res.text
        bullets = prompts.parse_output(text + "\n")
        with lock:
            pending.extend(bullets[done[0] :])
            done[0] = len(bullets)
        drain()
        timings["ttft_ms"] = res.ttft_ms
        timings["generated_tokens"] = res.generated_tokens
        timings["tokens_per_s"] = res.tokens_per_s
        timings["model_ms"] = res.total_ms
        return text

    def _add_model_bullet(
        self,
        sel: _Selection,
        sentences: list[SummarySentence],
        emit: OnSentence,
        section: str,
        text: str,
        cites: list[int],
        unit_ids: list[int],
    ) -> None:
        text = " ".join(text.split())
        if len(content_words(text)) < 1:
            return
        for s in sentences:
            if similar_words(text, s.text) >= 0.8:
                return  # restates a sentence already shown
        hints = [unit_ids[c - 1] for c in cites if 0 < c <= len(unit_ids) and unit_ids[c - 1] >= 0]
        al = sel.index.align(text, hints)
        emit(
            SummarySentence(
                text,
                section if section in SECTIONS else "Other",
                al.sources,
                al.support,
                al.supported,
            )
        )


def _date_range(notes: Sequence[SourceNote]) -> list[str | None]:
    dates = sorted(n.date for n in notes if n.date)
    return [dates[0], dates[-1]] if dates else [None, None]


# ---- persistence -------------------------------------------------------------------------


def save_summary(vault: Vault, result: SummaryResult) -> str:
    """Store a summary with provenance (model id + sha256, prompt version, sources, covers)."""
    from noteward.store import summaries

    sid = new_id("sm")
    body = result.to_json()
    body["timings_detail"] = {k: round(float(v), 1) for k, v in result.timings.items()}
    summaries.add(
        vault,
        sid,
        result.patient,
        result.model,
        result.prompt_version,
        result.covers,
        body,
        {
            "sentences": len(result.sentences),
            "supported": sum(s.supported for s in result.sentences),
        },
    )
    return sid


def load_summary(vault: Vault, summary_id: str) -> dict[str, Any]:
    """A stored summary: provenance, body, approval and whether newer notes exist."""
    from noteward.store import summaries

    stored = summaries.get(vault, summary_id)
    if stored is None:
        raise NotewardError(
            "Unknown summary id. List a patient's summaries with `noteward summaries`."
        )
    out = asdict(stored)
    out["out_of_date"] = is_out_of_date(vault, summary_id, out)
    return out


def latest_summary(vault: Vault, patient_id: str) -> dict[str, Any] | None:
    """The newest stored summary for a patient (or None)."""
    from noteward.store import summaries

    sid = summaries.latest_id(vault, patient_id)
    return load_summary(vault, sid) if sid else None


def is_out_of_date(vault: Vault, summary_id: str, stored: Mapping[str, Any] | None = None) -> bool:
    """True when the patient has notes the summary did not cover (newer notes arrived)."""
    from noteward.store import notes

    if stored is None:
        stored = load_summary(vault, summary_id)
    pid = stored["patient_id"]
    if not pid:
        return False
    covered = set(stored["covers"].get("note_ids", []))
    return any(nid not in covered for nid in notes.ids_for_patient(vault, pid))


def save_approved(vault: Vault, summary_id: str, text: str) -> None:
    """Store the clinician-approved text of a summary (with the time it was approved)."""
    from noteward.store import summaries

    summaries.approve(vault, summary_id, text)
