"""Where the desktop client's services are built: one place, handed to widgets.

:class:`Services` owns three threads, one per stateful resource:

- ``vault``: the unlocked :class:`~noteward.store.vault.Vault` (reads, imports, search,
  saving approved summaries);
- ``model``: the summarizer with its ``Llama`` instance, and its own read connection to
  the vault, opened on unlock and handed over once (it never touches the vault thread's);
- ``nlp``: the de-identification pipeline (spaCy + Presidio).

Widgets call the methods below; each returns a :class:`~noteward.ui.workers.Job` whose
signals report back. The functions run on the owner threads take plain data only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.errors import NotewardError
from noteward.core.models import Note, Patient, Summary
from noteward.settings import Settings
from noteward.ui.workers import Job, JobContext, OwnerThread

if TYPE_CHECKING:
    from noteward.store.vault import Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientRecord:
    """Everything the main window shows for one patient (loaded in one job)."""

    patient: Patient
    notes: list[Note]
    latest_summary: Summary | None = None
    facts: list[dict[str, Any]] = field(default_factory=list)


# -- functions run on the vault thread ------------------------------------------------------


def _close_vault(state: dict[str, Any]) -> None:
    vault = state.pop("vault", None)
    state.pop("searcher", None)
    if vault is not None:
        vault.close()


def _open(
    ctx: JobContext, path: str, passphrase: str, create: bool, busy_ms: int, user: str | None
) -> dict[str, Any]:
    from noteward.store.unlock import unlock
    from noteward.store.vault import DEFAULT_ADMIN, Vault

    _close_vault(ctx.state)
    if create:
        vault = Vault.create(path, passphrase, busy_timeout_ms=busy_ms, user=user or DEFAULT_ADMIN)
    else:
        # A wrong passphrase is counted; after several, unlock() waits here, on the vault
        # thread, never on the GUI thread.
        vault = unlock(path, passphrase, busy_timeout_ms=busy_ms, user=user)
    ctx.state["vault"] = vault
    # A second connection for the model thread, which owns it from here on.
    reader = Vault.open(path, passphrase, busy_timeout_ms=busy_ms, audit_unlock=False, user=vault.user.name)
    if ctx.cancel.is_set():  # locked while unlocking: nobody will adopt the reader
        reader.close()
        ctx.check()
    return {"path": str(vault.path), "reader": reader, "user": vault.user.name, "role": vault.user.role}


def default_user(path: str | Path) -> str | None:
    """The user a vault's unlock dialog suggests when nobody signed in this session: the
    first admin named in its key file (a small file beside the vault; no key is read)."""
    from noteward.store.keys import KeyFile, key_file_path

    try:
        keyfile = KeyFile.load(key_file_path(path))
    except NotewardError:
        return None
    return keyfile.default_user if keyfile is not None else None


def _vault(ctx: JobContext) -> Vault:
    vault = ctx.state.get("vault")
    if vault is None:
        raise NotewardError("The vault is locked. Unlock it first.")
    return vault


def _lock(ctx: JobContext) -> None:
    _close_vault(ctx.state)


def _patients(ctx: JobContext) -> list[Patient]:
    return list(_vault(ctx).patients())


def _record(ctx: JobContext, patient_id: str) -> PatientRecord:
    from noteward.store import events

    vault = _vault(ctx)
    patient = vault.patient(patient_id)
    notes = vault.notes(patient.id)
    ctx.check()
    events.patient_opened(vault, patient.id, len(notes))  # who opened whose record
    return PatientRecord(patient, notes, _latest_summary(vault, patient.id, notes))


def _latest_summary(vault: Vault, patient_id: str, notes: list[Note]) -> Summary | None:
    """The patient's newest saved summary, typed (with its approval and out-of-date state)."""
    try:
        from noteward.llm.summarizer import latest_summary
    except ImportError:
        return None
    stored = latest_summary(vault, patient_id)
    return Summary.from_stored(stored) if stored is not None else None


def _import(ctx: JobContext, paths: list[str], strict: bool) -> dict[str, Any]:
    from noteward.ingest.importer import import_paths

    report = import_paths(
        _vault(ctx), [Path(p) for p in paths], strict=strict, progress=ctx.progress, cancel=ctx.cancel
    )
    ctx.check()
    return dict(report.to_json())


def _index(ctx: JobContext) -> dict[str, Any]:
    from noteward.retrieval.index import index_vault

    report = index_vault(_vault(ctx), progress=ctx.progress, cancel=ctx.cancel)
    return dict(report.to_json())


def _search(ctx: JobContext, query: str, patient_id: str | None, k: int) -> list[dict[str, Any]]:
    from noteward.retrieval.search import HybridSearcher

    vault = _vault(ctx)
    searcher = ctx.state.get("searcher")
    if searcher is None:
        searcher = ctx.state["searcher"] = HybridSearcher(vault)
    from noteward.store import events

    out = []
    hits = searcher.search(query, patient_id=patient_id, k=k)
    events.searched(vault, patient_id, len(hits))  # the query text is never stored
    for hit in hits:
        ctx.check()
        out.append(
            {
                "note_id": hit.note_id,
                "start": hit.start,
                "end": hit.end,
                "text": hit.text,
                "score": hit.score,
                "section": hit.section,
                "marks": searcher.highlight(hit, query),  # matched terms, absolute offsets
                "semantic": hit.dense_rank is not None,
                "keyword": hit.bm25_rank is not None,
            }
        )
    return out


def _save_approved(ctx: JobContext, summary_id: str, text: str) -> Summary:
    """Approve as the signed-in user (or the OS login); returns the summary as stored, typed
    (its approved text without unedited unsupported sentences, approver and time)."""
    from noteward.llm.summarizer import load_summary, save_approved
    from noteward.store.summaries import approver_name

    vault = _vault(ctx)
    save_approved(vault, summary_id, text, approver=approver_name(vault))
    return Summary.from_stored(load_summary(vault, summary_id))


# -- functions run on the model thread ------------------------------------------------------


def _close_model(state: dict[str, Any]) -> None:
    service = state.pop("service", None)
    state.pop("service_key", None)
    if service is not None:
        service.close()  # frees the model and its KV cache, which holds the last prompt
    reader = state.pop("reader", None)
    if reader is not None:
        reader.close()


def _adopt_reader(ctx: JobContext, reader: Any) -> None:
    if ctx.cancel.is_set():  # locked before the hand-over: nobody may keep this connection
        reader.close()
        ctx.check()
    old = ctx.state.pop("reader", None)
    if old is not None:
        old.close()
    ctx.state["reader"] = reader


def _drop_reader(ctx: JobContext) -> None:
    """On lock: close the read connection and free the model (its cache holds note text)."""
    _close_model(ctx.state)


def _reset_model(ctx: JobContext) -> None:
    service = ctx.state.pop("service", None)
    if service is not None:
        service.close()


def _summarize(ctx: JobContext, patient_id: str, model_id: str | None, threads: int | None) -> Summary:
    from noteward.llm.summarizer import SummaryService

    reader = ctx.state.get("reader")
    if reader is None:
        raise NotewardError("The vault is locked. Unlock it first.")
    key = (model_id, threads)
    if ctx.state.get("service_key") != key or "service" not in ctx.state:
        ctx.state["service"] = SummaryService(model_id=model_id, threads=threads)
        ctx.state["service_key"] = key
    svc = ctx.state["service"]
    result = svc.summarize_patient(
        reader, patient_id, on_sentence=ctx.stream, on_token=ctx.stream, cancel=ctx.cancel
    )
    ctx.check()
    return result  # the typed summary (saved: it carries its id), as the pane shows it


# -- functions run on the nlp thread --------------------------------------------------------

# Heavy modules whose first import holds the GIL for hundreds of milliseconds at a time
# (loading libtorch and friends). Importing them once, early, on a worker keeps those
# stalls out of the first import, search or summary.
WARM_MODULES = (
    "torch",
    "sentence_transformers",
    "llama_cpp",
    "noteward.ingest.importer",
    "noteward.retrieval.search",
    "noteward.retrieval.index",
    "noteward.llm.summarizer",
    "noteward.deid.engine",
)


def _warm_up(ctx: JobContext) -> int:
    import importlib

    done = 0
    for i, name in enumerate(WARM_MODULES):
        ctx.check()
        try:
            importlib.import_module(name)
            done += 1
        except ImportError:
            log.info("warm-up: a module is not installed")
        ctx.progress(i + 1, len(WARM_MODULES))
    ctx.check()
    try:  # the grounding checker's vocabulary, so the first summary does not wait for it
        from noteward.llm.summarizer import preload_vocabulary

        preload_vocabulary()
    except ImportError:
        log.info("warm-up: the summarizer is not installed")
    try:  # the embedding model too: loading it holds the GIL in long stretches
        from noteward.retrieval.embeddings import get_embedder

        get_embedder().load()
    except Exception as exc:  # noqa: BLE001 - search reports a missing model when used
        log.info("warm-up: embedding model not loaded (%s)", type(exc).__name__)
    return done



def _forget_deid(ctx: JobContext) -> None:
    """On lock: drop the engine, whose per-patient matchers hold names and identifiers."""
    ctx.state.pop("deid", None)


# -- the de-identified view: masking what the screen shows ----------------------------------
#
# The view uses the engine's tag mode at its default operating point (Deidentifier()), which
# replaces every date it finds in free text with [DATE] and may leave a bare year (HIPAA Safe
# Harbor keeps years). Structured
# dates the screen shows (note dates, summary dates, birth and death dates) are generalised
# the same way: to their year, so the timeline keeps its order and no day or month shows.


def _mask_texts(ctx: JobContext, texts: list[str], patient: Patient | None) -> list[dict[str, Any]]:
    """Tag-mode de-identification of ``texts``, batched: for each, the masked text and its
    ``spans`` [(start, end, new_start, new_end)] mapping original offsets to masked ones."""
    from noteward.deid.engine import Deidentifier

    engine = ctx.state.get("deid")
    if engine is None:
        engine = ctx.state["deid"] = Deidentifier()
    ctx.check()
    found = engine.analyze_many(list(texts), patient=patient)
    out = []
    for text, ents in zip(texts, found, strict=True):
        ctx.check()
        result = engine.anonymize(text, mode="tag", patient=patient, entities=ents)
        spans = [(e.start, e.end, r.start, r.end) for e, r in zip(result.entities, result.replacements, strict=True)]
        out.append({"text": result.text, "spans": spans})
    return out


def masked_offset(spans: list[tuple[int, int, int, int]], offset: int) -> int:
    """An offset into the original text as an offset into its masked copy (one inside a
    replaced span lands on the replacement's start)."""
    shift = 0
    for start, end, new_start, new_end in spans:
        if offset < start:
            break
        if offset < end:
            return new_start
        shift = new_end - end
    return offset + shift


def year_only(iso: str | None, missing: str = "undated") -> str:
    """A date as the de-identified view shows it: its year (``missing`` when there is none)."""
    text = (iso or "").strip()
    return text[:4] if len(text) >= 4 and text[:4].isdigit() else missing


MASKED_NAME = "[NAME]"


class Services:
    """The client's background services and the threads that own their resources."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.vault_thread = OwnerThread("noteward-vault")
        self.model_thread = OwnerThread("noteward-model")
        self.nlp_thread = OwnerThread("noteward-nlp")
        self.vault_thread.on_stop(_close_vault)
        self.model_thread.on_stop(_close_model)
        self.vault_path: str | None = None
        self.signed_in: tuple[str, str] | None = None  # (name, role) while unlocked
        self.last_user: str | None = None  # who signed in last (the unlock dialog offers them)

    # vault
    def open_vault(self, path: str, passphrase: str, *, create: bool = False, user: str | None = None) -> Job:
        """Unlock (or create, with ``user`` its first admin) the vault as ``user`` (None: the
        vault's default admin); on success the model thread gets its reader and
        :attr:`signed_in` says who is signed in."""
        job = self.vault_thread.submit(
            "open", _open, str(path), passphrase, create, self.settings.busy_timeout_ms, user
        )
        job.job_did_succeed.connect(self._hand_over_reader)
        return job

    def _hand_over_reader(self, result: dict[str, Any]) -> None:
        reader = result.pop("reader", None)
        self.vault_path = result.get("path")
        self.signed_in = (str(result.get("user", "")), str(result.get("role", "")))
        self.last_user = self.signed_in[0]
        if reader is not None:
            self.model_thread.submit("adopt-reader", _adopt_reader, reader, runs_if_cancelled=True)

    def lock(self) -> list[Job]:
        """Cancel all work, close both vault connections and drop every cache derived
        from notes (model KV cache, search index, de-identification matchers), each on
        the thread that owns it."""
        self.signed_in = None
        jobs = []
        for thread, fn in (
            (self.vault_thread, _lock),
            (self.model_thread, _drop_reader),
            (self.nlp_thread, _forget_deid),
        ):
            thread.cancel_all()
            if thread.isRunning():  # a thread never started holds nothing: don't start it now
                jobs.append(thread.submit("lock", fn))
        return jobs

    def patients(self) -> Job:
        return self.vault_thread.submit("patients", _patients)

    def patient_record(self, patient_id: str) -> Job:
        return self.vault_thread.submit("record", _record, patient_id)

    def import_paths(self, paths: list[str], strict: bool = False) -> Job:
        return self.vault_thread.submit("import", _import, [str(p) for p in paths], strict)

    def index(self) -> Job:
        """Embed new chunks for semantic search (resumable; cancel keeps what is done)."""
        return self.vault_thread.submit("index", _index)

    def search(self, query: str, patient_id: str | None, k: int = 10) -> Job:
        return self.vault_thread.submit("search", _search, query, patient_id, k)

    def save_approved(self, summary_id: str, text: str) -> Job:
        return self.vault_thread.submit("approve", _save_approved, summary_id, text)

    # model
    def summarize(self, patient_id: str) -> Job:
        s = self.settings
        return self.model_thread.submit(
            "summarize", _summarize, patient_id, s.model or None, s.threads or None
        )

    def settings_did_change(self, settings: Settings) -> None:
        self.settings = settings
        self.model_thread.submit("reset-model", _reset_model)

    # nlp
    def warm_up(self) -> Job:
        """Import the heavy libraries in the background while the clinician unlocks."""
        return self.nlp_thread.submit("warm-up", _warm_up)

    def mask_texts(self, texts: list[str], patient: Patient | None) -> Job:
        """De-identify what the screen shows (the de-identified view), off the GUI thread."""
        return self.nlp_thread.submit("mask", _mask_texts, list(texts), patient)

    def shutdown(self) -> None:
        """Stop every thread, closing its resource on that thread."""
        for thread in (self.model_thread, self.nlp_thread, self.vault_thread):
            thread.stop()
