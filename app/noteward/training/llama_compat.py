"""Loading a GGUF model (with or without a LoRA adapter) in llama-cpp-python for training
tools and tests, with the same crash guard as the app's runtime.

On CPUs that report AMX, llama-cpp-python 0.3.36's repacked weight buffers segfault on any
multi-token batch; ``noteward.llm.runtime.no_weight_repack`` loads with them off.
"""

from __future__ import annotations

from typing import Any

from noteward.llm.runtime import no_weight_repack


def load_llama(model_path: str, lora_path: str | None = None, **kwargs: Any) -> Any:
    """``Llama(model_path, lora_path=..., **kwargs)`` with plain CPU buffers."""
    from llama_cpp import Llama

    with no_weight_repack():
        if lora_path is None:
            return Llama(model_path=model_path, **kwargs)
        return Llama(model_path=model_path, lora_path=lora_path, **kwargs)
