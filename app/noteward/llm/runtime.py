"""The one owner of a ``Llama`` instance: a dedicated thread that runs all model work.

Other threads (the CLI, the summarizer, the desktop client's workers) send requests and get
a ``Future``; tokens stream back through a callback that runs on the owner thread. This is
GPT4All's ``m_llmThread`` pattern: the llama.cpp context is never touched from two threads.

Cancellation is a ``threading.Event`` checked on every generated token *and* inside
``llama_decode`` through llama.cpp's abort callback, so a cancel in the middle of reading a
long prompt stops the CPU work within one graph node, not after the whole batch. After an
abort the KV cache is discarded (the next request re-reads its prompt).

Context budgeting: ``format_prompt`` + ``count_tokens`` let callers fit a prompt, and
``generate`` itself never lets prompt + new tokens exceed ``n_ctx`` (it shortens the
generation budget, and refuses a prompt that leaves no room with ``ContextOverflowError``).
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from noteward.core.errors import CancelledError, ModelError, NotewardError
from noteward.llm.chat_template import fallback_template
from noteward.llm.manifest import ResolvedModel, resolve_model
from noteward.llm.prompts import BASE_MODEL_SUFFIX

log = logging.getLogger(__name__)

# Tokens always left free for generation when the caller asks for a budget.
MIN_NEW_TOKENS = 16
_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def no_weight_repack() -> Iterator[None]:
    """Load with llama.cpp's extra (repacking) weight buffers off.

    With llama-cpp-python 0.3.36 on CPUs that report AMX (this project's build machine),
    the repacked CPU buffers crash (SIGSEGV) on any multi-token batch; plain buffers are
    correct and about as fast for these small models. NOTEWARD_LLAMA_REPACK=1 turns them
    back on.
    """
    import llama_cpp.llama_cpp as lc

    if os.environ.get("NOTEWARD_LLAMA_REPACK") == "1":
        yield
        return
    with _PARAMS_LOCK:
        orig = lc.llama_model_default_params

        def patched() -> Any:
            params = orig()
            params.use_extra_bufts = False
            return params

        lc.llama_model_default_params = patched
        try:
            yield
        finally:
            lc.llama_model_default_params = orig


class ContextOverflowError(NotewardError):
    """A prompt does not fit the model's context window (a bug in budgeting, exit 1)."""


@dataclass
class GenerationResult:
    """What one generation produced and how long each part took."""

    text: str
    prompt_tokens: int
    generated_tokens: int
    ttft_ms: float  # request start (on the owner thread) to the first generated token
    total_ms: float
    prompt_eval_ms: float
    finish_reason: str  # "stop" | "length"
    cached_prefix_tokens: int = 0
    token_times_ms: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        gen_ms = self.total_ms - self.ttft_ms
        return (
            (self.generated_tokens - 1) / (gen_ms / 1000)
            if self.generated_tokens > 1 and gen_ms > 0
            else 0.0
        )


@dataclass
class _Request:
    fn: Callable[[], Any]
    future: Future[Any]


class ModelRuntime:
    """Loads one verified GGUF on its own thread and serves generation requests in order.

    ``threads`` defaults to the machine's cores (``settings.resolved_threads()``).
    ``n_ctx`` defaults to the manifest's value. The model loads on the owner thread when the
    first request arrives (or on ``start()``).
    """

    def __init__(
        self,
        model: ResolvedModel | str | None = None,
        *,
        threads: int | None = None,
        n_ctx: int | None = None,
        n_batch: int = 128,
    ) -> None:
        self.model = model if isinstance(model, ResolvedModel) else resolve_model(model)
        if threads is None:
            from noteward.settings import load_settings

            threads = load_settings().resolved_threads()
        self.threads = max(1, int(threads))
        self.n_ctx = int(n_ctx or self.model.n_ctx)
        self.n_batch = int(n_batch)
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._llm: Any = None
        self._lock = threading.Lock()
        self._active_cancel: threading.Event | None = None
        self._abort_cb: Any = None  # keep the ctypes callback alive
        self._formatter: Any = None
        self.load_ms = 0.0

    # ---- owner thread -------------------------------------------------------------

    def start(self) -> ModelRuntime:
        """Start the owner thread and load the model (waits for the load to finish)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="noteward-llm", daemon=True)
                self._thread.start()
        self._call(lambda: None).result()
        return self

    def close(self) -> None:
        """Stop the owner thread and free the model."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def __enter__(self) -> ModelRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], Any]) -> Future[Any]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="noteward-llm", daemon=True)
                self._thread.start()
        fut: Future[Any] = Future()
        self._queue.put(_Request(fn, fut))
        return fut

    def _loop(self) -> None:
        while True:
            req = self._queue.get()
            if req is None:
                self._free()
                return
            if not req.future.set_running_or_notify_cancel():
                continue
            try:
                if self._llm is None:
                    self._load()
                req.future.set_result(req.fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                req.future.set_exception(exc)

    @staticmethod
    def _drop_sampler(llm: Any, gen: Any) -> None:
        """Free this generation's sampler chain now, on this thread.

        ``Llama.generate`` builds a new chain per call and keeps the last one; each chain
        (with its ctypes callback, when a logits processor is set) sits in a reference
        cycle, so it would otherwise be freed by some later garbage collection on any
        thread. The generator is closed first, so nothing can sample from it afterwards.
        """
        if gen is not None:
            gen.close()
        sampler, llm._sampler = getattr(llm, "_sampler", None), None
        if sampler is not None:
            sampler.close()

    def _free(self) -> None:
        """Free the model here, on the thread that used it, before this thread ends.

        Dropping the reference is not enough: a ``Llama`` loaded with a LoRA adapter sits in
        a reference cycle (llama-cpp-python's adapter-freeing closure holds it), so only the
        cyclic garbage collector would free it, later, on whatever thread happens to run a
        collection (the GUI thread, say) and in whatever order it finalizes the model, the
        context and the adapter. ``Llama.close()`` frees them now, adapter and context
        before the model, and with them the KV cache, which holds the last prompt's notes.
        """
        llm, self._llm = self._llm, None
        self._formatter = None
        if llm is not None:
            try:
                llm.close()
            except Exception as exc:  # noqa: BLE001 - freeing must not kill the thread silently
                log.error("freeing model %s failed: %s", self.model.id, type(exc).__name__)
        self._abort_cb = None  # only now: the context that could call it is gone

    def _load(self) -> None:
        import llama_cpp
        from llama_cpp import Llama

        t0 = time.perf_counter()
        kwargs: dict[str, Any] = dict(
            model_path=str(self.model.path),
            n_ctx=self.n_ctx,
            n_batch=self.n_batch,
            n_ubatch=self.n_batch,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        if self.model.adapter_path is not None:
            kwargs["lora_path"] = str(self.model.adapter_path)
        try:
            with no_weight_repack():
                llm = Llama(**kwargs)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"Model {self.model.id!r} could not be loaded by llama.cpp: {exc}."
            ) from None

        def _abort(_data: Any) -> bool:
            ev = self._active_cancel
            return bool(ev is not None and ev.is_set())

        self._abort_cb = llama_cpp.ggml_abort_callback(_abort)
        llama_cpp.llama_set_abort_callback(llm._ctx.ctx, self._abort_cb, ctypes.c_void_p(0))
        self._llm = llm
        self.load_ms = (time.perf_counter() - t0) * 1000
        log.info(
            "model %s loaded in %.0f ms (threads=%d, n_ctx=%d)",
            self.model.id,
            self.load_ms,
            self.threads,
            self.n_ctx,
        )

    # ---- prompts and tokens ---------------------------------------------------------

    @property
    def llm(self) -> Any:
        """The Llama instance (loads it); use only from the owner thread or for tokenizing."""
        if self._llm is None:
            self.start()
        return self._llm

    def format_prompt(self, user_text: str, system: str | None = None) -> str:
        """Wrap a user turn for this model: chat template for instruct models, else plain."""
        if self.model.prompt_style == "base":
            return (
                user_text
                if user_text.endswith(BASE_MODEL_SUFFIX)
                else user_text + BASE_MODEL_SUFFIX
            )
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            md = self.llm.metadata
            # a GGUF without a template (the pretrained Gemma 3) gets its architecture's turns
            template = md.get("tokenizer.chat_template") or fallback_template(md.get("general.architecture"))
            vocab = self.llm._model
            eos = vocab.token_get_text(self.llm.token_eos()) if self.llm.token_eos() >= 0 else ""
            bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user_text})
        return str(self._formatter(messages=messages).prompt)

    def tokenize(self, text: str) -> list[int]:
        """Tokens for a formatted prompt (special tokens parsed, BOS as the model wants)."""
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes as (part of) a prompt."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def prompt_budget(self, max_new_tokens: int) -> int:
        """How many prompt tokens fit so that ``max_new_tokens`` can still be generated."""
        return max(0, self.n_ctx - max(max_new_tokens, MIN_NEW_TOKENS) - 1)

    # ---- generation -----------------------------------------------------------------

    def submit(
        self,
        prompt: str | list[int],
        *,
        max_tokens: int = 256,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        reuse_cache: bool = True,
        repeat_penalty: float = 1.1,
        stop: tuple[str, ...] = (),
        numbers_from: tuple[str, ...] | None = None,
    ) -> Future[GenerationResult]:
        """Queue a generation; ``on_token`` gets each decoded text piece on the owner thread.

        Greedy decoding (temperature 0) so summaries are reproducible. Raises (through the
        future) ``CancelledError`` when ``cancel`` is set, ``ContextOverflowError`` when the
        prompt leaves fewer than MIN_NEW_TOKENS free. With ``numbers_from`` the model can only
        write numbers that occur in those texts (``noteward.llm.constraints``).
        """
        t_submit = time.perf_counter()
        return self._call(
            lambda: self._generate(
                prompt, max_tokens, on_token, cancel, reuse_cache, repeat_penalty, stop, t_submit, numbers_from
            )
        )

    def generate(self, prompt: str | list[int], **kwargs: Any) -> GenerationResult:
        """``submit(...).result()``: for callers that are themselves worker threads."""
        return self.submit(prompt, **kwargs).result()

    def _generate(
        self,
        prompt: str | list[int],
        max_tokens: int,
        on_token: Callable[[str], None] | None,
        cancel: threading.Event | None,
        reuse_cache: bool,
        repeat_penalty: float,
        stop: tuple[str, ...],
        t_submit: float,
        numbers_from: tuple[str, ...] | None = None,
    ) -> GenerationResult:
        import llama_cpp

        llm = self._llm
        t0 = time.perf_counter()
        cancel = cancel or threading.Event()
        if cancel.is_set():
            raise CancelledError("Cancelled.")
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        room = self.n_ctx - len(tokens)
        if room < MIN_NEW_TOKENS:
            raise ContextOverflowError(
                f"The prompt has {len(tokens)} tokens; the model's context holds {self.n_ctx} "
                f"and {MIN_NEW_TOKENS} must stay free for the answer. Shorten the input."
            )
        max_tokens = max(1, min(max_tokens, room - 1))
        if not reuse_cache:
            llm.reset()
        cached = 0
        if reuse_cache and llm.n_tokens:
            for a, b in zip(llm._input_ids[: llm.n_tokens], tokens, strict=False):
                if a != b:
                    break
                cached += 1
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        token_times: list[float] = []
        n_gen = 0
        ttft = 0.0
        finish = "length"
        vocab = llm._model.vocab
        self._active_cancel = cancel
        gen: Any = None
        try:
            processors = None
            if numbers_from is not None:
                from noteward.llm.constraints import SourceNumbersOnly, number_vocab

                processors = llama_cpp.LogitsProcessorList(
                    [
                        SourceNumbersOnly(
                            numbers_from,
                            number_vocab(llm),
                            len(tokens),
                            lambda ids: llm.detokenize(ids).decode("utf-8", errors="replace"),
                        )
                    ]
                )
            gen = llm.generate(
                tokens,
                temp=0.0,
                top_k=1,
                top_p=1.0,
                min_p=0.0,
                repeat_penalty=repeat_penalty,
                logits_processor=processors,
            )
            for tok in gen:
                now = time.perf_counter()
                if n_gen == 0:
                    ttft = (now - t0) * 1000
                token_times.append((now - t0) * 1000)
                if cancel.is_set():
                    raise CancelledError("Cancelled.")
                if llama_cpp.llama_vocab_is_eog(vocab, tok):
                    finish = "stop"
                    break
                n_gen += 1
                piece = decoder.decode(llm.detokenize([tok]))
                if piece:
                    pieces.append(piece)
                    if on_token is not None:
                        on_token(piece)
                if stop and any("".join(pieces[-8:]).endswith(s) for s in stop):
                    finish = "stop"
                    break
                if n_gen >= max_tokens:
                    break
        except RuntimeError as exc:
            # llama_decode returns non-zero when the abort callback fired.
            llm.reset()
            if cancel.is_set():
                raise CancelledError("Cancelled.") from None
            raise ModelError(f"The model failed while generating: {exc}.") from None
        except CancelledError:
            raise
        finally:
            self._active_cancel = None
            self._drop_sampler(llm, gen)
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            if on_token is not None:
                on_token(tail)
        total = (time.perf_counter() - t0) * 1000
        del t_submit
        return GenerationResult(
            text="".join(pieces),
            prompt_tokens=len(tokens),
            generated_tokens=n_gen,
            ttft_ms=ttft,
            total_ms=total,
            prompt_eval_ms=ttft,
            finish_reason=finish,
            cached_prefix_tokens=cached,
            token_times_ms=token_times,
        )

    def raw_completion(
        self, tokens: list[int], max_tokens: int, repeat_penalty: float = 1.1
    ) -> dict[str, Any]:
        """Plain ``Llama.create_completion`` on the same tokens and sampling settings, cold cache.

        The benchmark's baseline for the overhead ratio.
        """

        def run() -> dict[str, Any]:
            llm = self._llm
            llm.reset()
            t0 = time.perf_counter()
            out = llm.create_completion(
                tokens,
                max_tokens=max_tokens,
                temperature=0.0,
                top_k=1,
                top_p=1.0,
                min_p=0.0,
                repeat_penalty=repeat_penalty,
            )
            total = (time.perf_counter() - t0) * 1000
            self._drop_sampler(llm, None)
            usage = out.get("usage", {})
            return {
                "total_ms": total,
                "prompt_tokens": usage.get("prompt_tokens", len(tokens)),
                "generated_tokens": usage.get("completion_tokens", 0),
                "text": out["choices"][0]["text"],
            }

        return self._call(run).result()

    def reset(self) -> None:
        """Forget the KV cache (next prompt is read from scratch)."""
        self._call(lambda: self._llm.reset()).result()
