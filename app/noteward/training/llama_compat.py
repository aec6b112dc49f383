"""Loading a GGUF model (with or without a LoRA adapter) in llama-cpp-python 0.3.36 safely.

On CPUs that report AMX (this workstation), llama.cpp puts the weights in its "extra" CPU
buffer types (AMX / repacked Q4 layouts), and evaluating any batch of more than one token
then segfaults inside ``llama_decode`` (with or without an adapter; checked here). Loading
without the extra buffer types (``llama_model_params.use_extra_bufts = False``) avoids it.
``Llama()`` does not expose that flag, so it is set on the default model parameters for the
duration of the load. ``noteward.llm.runtime`` does the same for the app's own runtime;
this copy serves the training tests and tools, which load models directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCK = threading.Lock()


@contextmanager
def plain_cpu_buffers() -> Iterator[None]:
    """While active, models load with use_extra_bufts=False (no AMX/repacked buffers)."""
    import llama_cpp
    import llama_cpp.llama as llama_mod

    with _LOCK:
        original = llama_cpp.llama_model_default_params

        def params() -> Any:
            p = original()
            p.use_extra_bufts = False
            return p

        llama_cpp.llama_model_default_params = params
        llama_mod.llama_cpp.llama_model_default_params = params
        try:
            yield
        finally:
            llama_cpp.llama_model_default_params = original
            llama_mod.llama_cpp.llama_model_default_params = original


def load_llama(model_path: str, lora_path: str | None = None, **kwargs: Any) -> Any:
    """``Llama(model_path, lora_path=..., **kwargs)`` with plain CPU buffers (see module doc)."""
    from llama_cpp import Llama

    with plain_cpu_buffers():
        if lora_path is None:
            return Llama(model_path=model_path, **kwargs)
        return Llama(model_path=model_path, lora_path=lora_path, **kwargs)
