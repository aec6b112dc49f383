"""Session-scoped model fixtures for the llm tests (loaded lazily, once)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def smollm_runtime() -> Iterator[Any]:
    """The real SmolLM2 GGUF on its owner thread (2 threads at most: the machine is shared)."""
    from noteward.llm.runtime import ModelRuntime

    rt = ModelRuntime("smollm2-135m-instruct-q4_1", threads=2, n_ctx=2048).start()
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def summary_service(smollm_runtime: Any) -> Iterator[Any]:
    """A SummaryService sharing the session's runtime, with a small model budget."""
    from noteward.llm.summarizer import SummaryService

    svc = SummaryService(
        model_id="smollm2-135m-instruct-q4_1", threads=2, max_new_tokens=48, prompt_token_cap=512
    )
    svc._runtime = smollm_runtime
    yield svc
    svc._runtime = None  # the runtime fixture closes it
