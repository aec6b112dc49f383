"""The model runtime on the real SmolLM2 GGUF: streaming, cancel, context budget."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from noteward.core.errors import CancelledError
from noteward.llm.runtime import ContextOverflowError, ModelRuntime

pytestmark = pytest.mark.slow


def _long_tokens(rt: Any, n: int) -> list[int]:
    text = " ".join(
        f"Visit {i}: blood pressure {110 + i % 40} over {70 + i % 20}, pulse {60 + i % 30}."
        for i in range(600)
    )
    toks = rt.tokenize(rt.format_prompt(text))
    assert len(toks) >= n
    return toks[:n]


def test_streams_tokens_that_join_to_the_text(smollm_runtime: Any) -> None:
    pieces: list[str] = []
    res = smollm_runtime.generate(
        smollm_runtime.format_prompt("List three colours."), max_tokens=12, on_token=pieces.append
    )
    assert res.generated_tokens >= 1
    assert "".join(pieces) == res.text
    assert res.prompt_tokens == len(
        smollm_runtime.tokenize(smollm_runtime.format_prompt("List three colours."))
    )


def test_generation_runs_on_the_owner_thread(smollm_runtime: Any) -> None:
    seen: set[str] = set()
    smollm_runtime.generate(
        "Hello", max_tokens=3, on_token=lambda _p: seen.add(threading.current_thread().name)
    )
    assert seen == {"noteward-llm"}


def test_cancel_during_prompt_reading_stops_cpu_use(smollm_runtime: Any) -> None:
    """Cancel 0.3 s into a ~1,900-token prompt: under 50 ms CPU from 0.5 s to 1.5 s after."""
    rt = smollm_runtime
    tokens = _long_tokens(rt, rt.n_ctx - 100)
    cancel = threading.Event()
    fut = rt.submit(tokens, max_tokens=64, cancel=cancel, reuse_cache=False)
    time.sleep(0.3)
    assert not fut.done()  # still reading the prompt
    cancel.set()
    t_cancel = time.monotonic()
    with pytest.raises(CancelledError):
        fut.result(timeout=60)
    time.sleep(max(0.0, t_cancel + 0.5 - time.monotonic()))
    cpu0 = time.process_time()
    time.sleep(max(0.0, t_cancel + 1.5 - time.monotonic()))
    used_ms = (time.process_time() - cpu0) * 1000
    assert used_ms < 50, f"{used_ms:.1f} ms CPU after cancel"
    # the runtime recovers: the next request works
    assert rt.generate("Hello", max_tokens=2).prompt_tokens > 0


def test_cancel_on_a_streamed_token(smollm_runtime: Any) -> None:
    cancel = threading.Event()
    got: list[str] = []

    def on_token(p: str) -> None:
        got.append(p)
        if len(got) == 3:
            cancel.set()

    with pytest.raises(CancelledError):
        smollm_runtime.generate(
            smollm_runtime.format_prompt("Count from one to fifty."),
            max_tokens=100,
            on_token=on_token,
            cancel=cancel,
        )
    assert len(got) == 3


def test_prompt_longer_than_the_context_is_refused_not_crashed(smollm_runtime: Any) -> None:
    rt = smollm_runtime
    text = "word " * (rt.n_ctx + 50)
    with pytest.raises(ContextOverflowError):
        rt.generate(text, max_tokens=4)
    assert rt.generate("Hi", max_tokens=2).prompt_tokens > 0


def test_generation_budget_is_clipped_to_the_context() -> None:
    rt = ModelRuntime("smollm2-135m-instruct-q4_1", threads=2, n_ctx=256).start()
    try:
        toks = _long_tokens(rt, 200)
        res = rt.generate(toks, max_tokens=10_000, repeat_penalty=1.0)
        assert res.prompt_tokens + res.generated_tokens <= 256
        assert rt.prompt_budget(64) == 256 - 64 - 1
    finally:
        rt.close()


def test_close_frees_an_adapter_model_at_once_on_its_own_thread() -> None:
    """A base + LoRA adapter model (the default's adapter, applied at load) is, inside llama-cpp-python, in a reference
    cycle: dropping it leaves the weights, the adapter and the KV cache (the last prompt's
    notes) to a later garbage collection on whatever thread runs one, in any order. close()
    must free them before it returns, on the owner thread, with the collector off."""
    import gc

    from noteward.llm.manifest import load_manifest, resolve_model

    # the default now runs merged (one GGUF); its adapter applied at load is what this frees
    entry = load_manifest().get()
    adapter = entry.adapter_file()
    assert adapter is not None, "the default model should be an adapter entry"
    at_load = resolve_model(entry.id, merge=False)
    assert at_load.adapter_path == adapter.path and not at_load.merged
    rt = ModelRuntime(at_load, threads=2, n_ctx=256)
    assert rt.model.adapter_path is not None
    rt.start()
    llm = rt._llm
    assert rt.generate("Hi", max_tokens=2).generated_tokens >= 1
    # with a logits processor the sampler chain holds a ctypes callback: freed right away too
    assert rt.generate("Dose: ", max_tokens=3, numbers_from=("10 mg",)).prompt_tokens > 0
    assert llm._sampler is None
    assert llm._ctx.ctx is not None and llm._lora_adapter is not None
    gc.disable()
    try:
        rt.close()
        assert llm._lora_adapter is None, "adapter still allocated after close()"
        assert llm._ctx.ctx is None, "context (KV cache) still allocated after close()"
        assert llm._model.model is None, "weights still allocated after close()"
        assert rt._llm is None and rt._abort_cb is None
    finally:
        gc.enable()
