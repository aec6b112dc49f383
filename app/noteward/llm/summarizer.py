"""Grounded patient summaries: selection, then composition, then the model within a budget.

The service runs three steps; each lives in its own module:

1. **Selection** (``noteward.llm.selection``): every note is split into source units with
   offsets, repeats across visits collapse to their latest copy, units are classified and
   ranked, and a skeleton is chosen without the model.
2. **Composition** (``noteward.llm.composition``): what the summary states as of the
   newest note: the current medications and problems from the record's facts, allergies with
   their conflicts, recent findings within the window, a top line, all within a length
   cap. These sentences are copied text or facts located in the notes, so they align at
   once and are streamed to ``on_sentence`` in milliseconds, long before the model's first
   token.
3. **The model pass**: the grounded-v1 prompt holds the skeleton plus the next best-ranked
   units, up to a token budget (``prompt_token_cap``, never more than ``n_ctx`` minus the
   generation budget); the model writes at most ``max_new_tokens`` and can only write
   numbers found in the prompt's sentences (``noteward.llm.constraints``). Each bullet is
   aligned by ``noteward.llm.grounding`` as soon as its line ends; bullets that repeat a
   sentence already shown are dropped, new ones are added with their verdict (unsupported
   ones are kept but flagged) while the length cap allows.

Why not map-reduce: on two CPU cores a 135M-270M model reads 200-400 prompt tokens/s, so
summarizing the 708-note record (about 300,000 tokens) chunk by chunk would take many
minutes against a 60 s target, and small base models do not reduce reliably (they copy).
Selection costs one pass of plain Python over the text (about a second for 1.1 M
characters), keeps the prompt the same size whatever the record's length, and the repeated
boilerplate of long records collapses in the de-duplication step.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from noteward.core.errors import NotewardError
from noteward.core.ids import new_id
from noteward.core.models import SECTIONS, SUMMARY_SECTIONS, Summary, SummarySentence
from noteward.llm import prompts
from noteward.llm.composition import (
    Composition,
    Draft,
    Who,
    compose,
    months_before,
    without_semantic_tags,
)
from noteward.llm.grounding import SourceUnit, content_words
from noteward.llm.selection import (  # noqa: F401 - re-exported for evaluation and training
    Selection,
    SourceNote,
    _Selection,
    classify,
    fit_prompt_lines,
    iso_date,
    prompt_candidates,
    select,
    similar_words,
)

if TYPE_CHECKING:
    from noteward.llm.lexicon import Vocabulary
    from noteward.store.vault import Vault

log = logging.getLogger(__name__)

EXTRACTIVE_MODEL_ID = "extractive (no model)"
OnSentence = Callable[[SummarySentence], None]
OnToken = Callable[[str], None]


class SynopsisWriter(Protocol):
    """The hook for a model-written top line ("who the patient is and why seen now"): given
    the selection and the composed summary, the checked line (section Patient, origin
    model), or None to keep the line composed from facts. ``noteward.llm.synopsis``'s
    ``ModelSynopsis`` is set by default only for a model trained to write that line."""

    def __call__(
        self, sel: Selection, comp: Composition, cancel: threading.Event | None = None
    ) -> SummarySentence | None: ...


SummaryResult = Summary  # the name evaluation, benchmarks and older callers use


@dataclass
class SummaryService:
    """Builds grounded summaries; one instance owns one model runtime (lazily started).

    ``model_id`` None means the settings' or manifest's default; ``threads`` None means the
    machine's cores. ``use_model=False`` gives the composed sentences alone (no model is
    loaded). ``recent_months`` and ``max_sentences`` None mean the settings'
    (``summary_recent_months``, ``summary_max_sentences``; NOTEWARD_* overridable).
    Both callbacks (``on_sentence``, ``on_token``) run on the calling thread, never on the
    model's owner thread (tokens are handed over in batches, every 50 ms at most); they
    must be quick and must not block.
    """

    model_id: str | None = None
    threads: int | None = None
    max_new_tokens: int = 160
    prompt_token_cap: int = 1024
    use_model: bool = True
    recent_months: int | None = None
    max_sentences: int | None = None
    synopsis_writer: SynopsisWriter | None = None
    _runtime: Any = field(default=None, repr=False)
    _unit_cache: dict[tuple[str, int], list[SourceUnit]] = field(default_factory=dict, repr=False)
    _vocabulary_cache: dict[tuple[str, ...], Vocabulary] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from noteward.llm.manifest import resolve_model
        from noteward.settings import load_settings

        if self.recent_months is None or self.max_sentences is None:
            settings = load_settings()
            if self.recent_months is None:
                self.recent_months = settings.summary_recent_months
            if self.max_sentences is None:
                self.max_sentences = settings.summary_max_sentences
        if not self.use_model:
            preload_vocabulary()
            # provenance says honestly that no model wrote any of it
            self._resolved = None
            self.model_info = {"id": EXTRACTIVE_MODEL_ID, "sha256": ""}
            return
        preload_vocabulary()  # read while the model loads, not before the first sentence
        self._resolved = resolve_model(self.model_id)  # fails early (ModelError) when missing
        self.model_info = {"id": self._resolved.id, "sha256": self._resolved.sha256}
        if self.synopsis_writer is None:
            from noteward.llm.synopsis import ModelSynopsis, writes_synopsis

            # Only a model trained with the reference-v2 recipe learned the synopsis task;
            # any other (the current default, trained with grounded-v1; a base model) would
            # guess, so its summaries keep the top line composed from facts.
            if writes_synopsis(self._resolved.id):
                self.synopsis_writer = ModelSynopsis(lambda: self.runtime)

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
    ) -> Summary:
        """Summarize all of a patient's notes; saved in the vault with provenance."""
        t0 = time.perf_counter()
        patient = vault.patient(patient_id)
        notes = [SourceNote(n.id, n.text, n.date) for n in vault.notes(patient.id)]
        if not notes:
            raise NotewardError(
                "This patient has no notes to summarize. Import notes first (`noteward import`)."
            )
        facts = vault.facts(patient.id)
        who = Who(patient.birth_date, patient.sex, patient.deceased_date if patient.deceased else None)
        result = self._summarize(
            notes, facts, patient.id, on_sentence, on_token, cancel, t0, who=who
        )
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
    ) -> Summary:
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
    ) -> Summary:
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
        who: Who | None = None,
    ) -> Summary:
        from noteward.core.errors import CancelledError

        cancel = cancel or threading.Event()
        months = int(self.recent_months or 12)
        cap = int(self.max_sentences or 15)
        newest = max((d for d in (iso_date(n.date) for n in notes) if d), default=None)
        sel = select(
            notes,
            facts,
            unit_cache=self._unit_cache,
            recent_since=months_before(newest, months) if newest else None,
            # the checker knows the record's own drug and condition names (given below,
            # once the default vocabulary is read) and the record's sex
            vocabulary=self._patient_vocabulary(facts) if vocabulary_ready() else None,
            patient_sex=who.sex if who is not None else None,
        )

        def checker_ready() -> None:
            if sel.index.vocabulary is None:
                sel.index.vocabulary = self._patient_vocabulary(facts)

        comp = compose(
            sel,
            facts,
            who=who,
            recent_months=months,
            max_sentences=cap,
            model_slots=self._model_slots(cap),
        )
        retrieval_ms = (time.perf_counter() - t0) * 1000
        sentences: list[SummarySentence] = []
        timings: dict[str, float] = {"retrieval_ms": retrieval_ms}

        def emit(s: SummarySentence) -> None:
            sentences.append(s)
            if "first_sentence_ms" not in timings:
                timings["first_sentence_ms"] = (time.perf_counter() - t0) * 1000
            if on_sentence is not None:
                on_sentence(s)

        for draft in comp.drafts:
            if cancel.is_set():
                raise CancelledError("Cancelled.")
            # fact lines and verbatim copies need no vocabulary: they go out while it loads
            if not _copied_verbatim(sel, draft):
                checker_ready()
            emit(self._sentence(sel, draft, checker_ready))
        checker_ready()

        model_text = ""
        if self.use_model:
            model_text = self._model_pass(sel, comp, sentences, emit, on_token, cancel, timings)
        if self.synopsis_writer is not None:
            # after the composed sentences and the model's own: the fact line is on screen
            # first, and a supported model line replaces it in the finished summary
            self._write_synopsis(sel, comp, sentences, cancel, timings)
        covers = {
            "note_ids": [n.id for n in notes],
            "date_range": _date_range(notes),
            "recent_window": list(comp.window),
        }
        order = {s: i for i, s in enumerate(SUMMARY_SECTIONS)}
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
        return Summary(
            patient_id,
            sentences,
            covers,
            dict(self.model_info),
            timings,
            prompt_version=prompts.PROMPT_VERSION,
            model_output=model_text,
            omitted=dict(comp.omitted),
        )

    def _model_slots(self, cap: int) -> int:
        """Sentences of the cap kept for the model's own (none without a model)."""
        if not self.use_model:
            return 0
        from noteward.llm.selection import content_rules

        return min(int(content_rules().get("model_slots", 3)), max(0, cap // 4))

    def _write_synopsis(
        self,
        sel: Selection,
        comp: Composition,
        sentences: list[SummarySentence],
        cancel: threading.Event,
        timings: dict[str, float],
    ) -> None:
        """Replace the composed top line with the synopsis writer's checked line, when it
        gives one (the cost is recorded as ``synopsis_ms``)."""
        from noteward.core.errors import CancelledError

        assert self.synopsis_writer is not None
        at = next((i for i, s in enumerate(sentences) if s.section == "Patient"), None)
        if at is None or cancel.is_set():
            return
        t0 = time.perf_counter()
        line = self.synopsis_writer(sel, comp, cancel)
        timings["synopsis_ms"] = (time.perf_counter() - t0) * 1000
        if cancel.is_set():
            raise CancelledError("Cancelled.")
        if line is not None:
            sentences[at] = line

    def _patient_vocabulary(self, facts: Sequence[Mapping[str, Any]]) -> Vocabulary:
        key = tuple(sorted(f"{f.get('kind')}|{f.get('display')}" for f in facts))
        vocab = self._vocabulary_cache.get(key)
        if vocab is None:
            if len(self._vocabulary_cache) >= 8:
                self._vocabulary_cache.clear()
            vocab = self._vocabulary_cache[key] = patient_vocabulary(facts)
        return vocab

    def _sentence(
        self, sel: Selection, d: Draft, checker_ready: Callable[[], None] | None = None
    ) -> SummarySentence:
        """A composed draft as a checked sentence: copied text is aligned to its unit, fact
        lines cite where their facts are written (the structured record backs them).
        ``checker_ready`` gives the index its vocabulary when a copy turns out not to be
        verbatim after all (its words must then be checked). The draft is aligned as
        written; it is shown without SNOMED semantic tags (``without_semantic_tags``)."""
        shown = without_semantic_tags(d.text)
        if d.origin == "model":
            al = sel.index.align(d.text, [])
            return SummarySentence(
                shown, d.section, al.sources, al.support, al.supported,
                date=d.date or _newest_source_date(sel, al.sources), origin="model",
            )
        if d.origin == "extract" and d.unit_idx is not None:
            al = sel.index.align(d.text, [d.unit_idx])
            if not al.exact and checker_ready is not None and sel.index.vocabulary is None:
                checker_ready()
                al = sel.index.align(d.text, [d.unit_idx])
            sources, support, supported = al.sources, al.support, al.supported
        else:
            sources, support, supported = list(d.spans), round(d.located, 4), True
        return SummarySentence(
            shown,
            d.section,
            sources,
            support,
            supported,
            date=d.date or _newest_source_date(sel, sources),
            origin=d.origin,
            conflicts=list(d.conflicts),
        )

    def build_prompt(self, sel: Selection) -> tuple[str, list[int], int]:
        """The model prompt for a selection: (formatted prompt, unit index per [S] id, tokens)."""
        prompt, _lines, ids, tokens = self._prompt(sel)
        return prompt, ids, tokens

    def _prompt(self, sel: Selection) -> tuple[str, list[str], list[int], int]:
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
        sel: Selection,
        comp: Composition,
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
                self._add_model_bullet(sel, comp, sentences, emit, section, text, cites, unit_ids)

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
        sel: Selection,
        comp: Composition,
        sentences: list[SummarySentence],
        emit: OnSentence,
        section: str,
        text: str,
        cites: list[int],
        unit_ids: list[int],
    ) -> None:
        text = " ".join(text.split())
        if len(content_words(text)) < 1 or text.endswith(":"):
            return  # empty, or a lead-in ("Clinical notes:") with nothing after it
        # aligned as written ("Muscle pain (finding)" is the note's own text, an exact
        # match), shown without the semantic tag
        shown = without_semantic_tags(text)
        for s in sentences:
            if similar_words(shown, s.text) >= 0.8:
                return  # restates a sentence already shown
        if len(sentences) >= comp.max_sentences:
            return  # the length cap is reached
        hints = [unit_ids[c - 1] for c in cites if 0 < c <= len(unit_ids) and unit_ids[c - 1] >= 0]
        al = sel.index.align(text, hints)
        when = _newest_source_date(sel, al.sources)
        placed = comp.place_model_sentence(section if section in SECTIONS else "Other", shown, when)
        if placed is None:
            return
        # dated by its newest source; without one, by the newest note the model read
        emit(
            SummarySentence(
                shown, placed, al.sources, al.support, al.supported,
                date=when or comp.window[1], origin="model", conflicts=comp.conflicts_for(shown),
            )
        )


# ---- the checker's vocabulary -------------------------------------------------------------

_vocabulary_lock = threading.Lock()
_vocabulary_loader: threading.Thread | None = None


def preload_vocabulary() -> None:
    """Start reading the checker's default vocabulary on a background thread (once per
    process): the drug dictionary and English word frequencies take about half a second
    when the word cache exists, seconds on the very first run. Started when a service is
    made (and by the app's warm-up), so a summary's first sentence does not wait for it."""
    global _vocabulary_loader
    with _vocabulary_lock:
        if _vocabulary_loader is None:
            _vocabulary_loader = threading.Thread(
                target=_load_vocabulary, name="noteward-vocabulary", daemon=True
            )
            _vocabulary_loader.start()


def _load_vocabulary() -> None:
    from noteward.llm.lexicon import default_vocabulary

    try:
        default_vocabulary()
    except Exception as exc:  # noqa: BLE001 - the summary loads it again and reports the error
        log.info("checker vocabulary: preload failed (%s)", type(exc).__name__)


def vocabulary_ready() -> bool:
    """True when the default vocabulary is read (building a patient's is then quick)."""
    loader = _vocabulary_loader
    return loader is not None and not loader.is_alive()


def _copied_verbatim(sel: Selection, d: Draft) -> bool:
    """True for a draft the checker passes without its vocabulary: a line of facts, or a
    copy found verbatim in the notes."""
    if d.origin == "fact":
        return True
    if d.origin != "extract" or d.unit_idx is None:
        return False
    return sel.index.find_exact(d.text, [sel.index.units[d.unit_idx].note_id]) is not None


def patient_vocabulary(facts: Sequence[Mapping[str, Any]]) -> Vocabulary:
    """The checker's vocabulary for one patient: the default one plus the distinctive words
    of the record's FHIR medication names (drugs) and condition and procedure names, so a
    condition the record names ("coronary") must be in a sentence's sources."""
    from noteward.llm.lexicon import vocabulary_from_names

    preload_vocabulary()
    assert _vocabulary_loader is not None
    _vocabulary_loader.join()  # at once unless a summary starts right after the process
    meds = [str(f.get("display") or "") for f in facts if f.get("kind") == "medication"]
    conditions = [
        str(f.get("display") or "") for f in facts if f.get("kind") in ("condition", "procedure")
    ]
    return vocabulary_from_names(meds, conditions)


def _newest_source_date(sel: Selection, sources: Sequence[Any]) -> str | None:
    """The date of the newest note among a sentence's sources."""
    dates = [d for d in (sel.note_dates.get(s.note_id) for s in sources) if d]
    return max(dates) if dates else None


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
    """The newest stored summary for a patient (or None).

    When it is not approved and an older one is, the approved one comes with it as
    ``earlier_approved``: a newer machine summary never silently takes an approved one's
    place (both are kept and shown, the newer as not approved)."""
    from noteward.store import summaries

    sid = summaries.latest_id(vault, patient_id)
    if not sid:
        return None
    out = load_summary(vault, sid)
    out["earlier_approved"] = None
    if out["approved_text"] is None:
        approved_id = summaries.latest_approved_id(vault, patient_id)
        if approved_id and approved_id != sid:
            out["earlier_approved"] = load_summary(vault, approved_id)
    return out


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


def approval_text(summary: Summary) -> str:
    """The text a clinician is offered to edit and approve: every sentence under its
    section heading, the unsupported ones marked (``UNSUPPORTED_MARK``) so the mark stays
    visible in the editor; they are left out on approval unless edited."""
    return summary.approval_text()


def save_approved(vault: Vault, summary_id: str, text: str, *, approver: str) -> int:
    """Store the clinician-approved text of a summary, with the approver's user name and
    the time (UTC).

    A line that repeats one of the summary's unsupported sentences unedited is left out
    (with its mark, or with the mark deleted): nothing in the notes backs it and nobody
    changed it. An edited line is the clinician's own and is kept, without the mark.
    Returns how many lines were left out (also audited, as a count)."""
    from noteward.store import summaries

    stored = summaries.get(vault, summary_id)
    if stored is None:
        raise NotewardError("Unknown summary id: nothing was approved.")
    kept, left_out = without_unsupported(text, Summary.from_stored(asdict(stored)).sentences)
    summaries.approve(vault, summary_id, kept, approver=approver, unsupported_left_out=left_out)
    return left_out


def without_unsupported(text: str, sentences: Sequence[SummarySentence]) -> tuple[str, int]:
    """``text`` without the unsupported marks, and without the lines that are an unsupported
    sentence word for word (mark, bullet, case and spacing aside); how many lines that removed."""
    supported = {_line_key(s.text) for s in sentences if s.supported}
    unsupported = {_line_key(s.text) for s in sentences if not s.supported} - supported
    kept: list[str] = []
    left_out = 0
    for line in text.splitlines(keepends=True):
        line = _MARK_RE.sub("", line)
        if _line_key(line) in unsupported:
            left_out += 1
        else:
            kept.append(line)
    return "".join(kept), left_out


_BULLET_RE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
# The unsupported mark wherever it is left in a line (also partly deleted): never saved.
_MARK_RE = re.compile(
    r"(?:⚠\s*UNSUPPORTED(?:,\s*check or delete)?|UNSUPPORTED,\s*check or delete)\s*:\s*",
    re.IGNORECASE,
)


def _line_key(line: str) -> str:
    return " ".join(_BULLET_RE.sub("", line).split()).casefold()
