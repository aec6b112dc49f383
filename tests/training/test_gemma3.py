"""Gemma 3 270M as a fine-tuning base: de-quantize -> train -> GGUF adapter -> merged Q8_0 -> llama.cpp.

A tiny run through the CLI on the packaged Q4_K_M base: one MeQSum example learned by heart
(a LoRA on all seven projections, twelve steps), exported as a ``gemma3`` GGUF adapter and
merged at Q8_0 into the cache folder. llama.cpp must then write that example's reference
and stop at ``<end_of_turn>``: a wrong tensor layout in the export (a Llama-style Q/K
permutation, say) or the wrong turn format would not reproduce it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noteward import cli
from noteward.llm.manifest import load_manifest, sha256_file
from noteward.training import export, pipeline
from tests.conftest import require_shared

NAME = "tiny-gemma3"
BASE = "gemma3-270m-q4_k_m"


def _reader_field(path: Path, name: str) -> Any:
    import gguf

    f = gguf.GGUFReader(path).fields.get(name)
    return None if f is None else f.contents()


@pytest.mark.parametrize(
    ("model_type", "arch", "permuted"),
    [
        ("llama", "llama", True),
        ("gemma3_text", "gemma3", False),
    ],
)
def test_adapter_export_names_the_architecture_and_permutes_only_llama(
    tmp_path: Path, model_type: str, arch: str, permuted: bool
) -> None:
    import gguf
    import numpy as np
    import torch

    class Config:
        num_attention_heads = 2
        num_key_value_heads = 1

    cfg = Config()
    cfg.model_type = model_type  # type: ignore[attr-defined]
    b = torch.arange(8 * 2, dtype=torch.float32).reshape(8, 2)
    lora = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.ones(2, 8),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": b,
    }
    path = export.export_lora_gguf(lora, cfg, 4.0, tmp_path / "a.gguf")
    assert _reader_field(path, "general.architecture") == arch
    t = next(t for t in gguf.GGUFReader(path).tensors if t.name == "blk.0.attn_q.weight.lora_b")
    stored = np.asarray(t.data, dtype=np.float32).reshape(8, 2)
    assert np.array_equal(stored, b.numpy()) is (not permuted)


def test_export_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    from noteward.core.errors import ModelError

    class Config:
        model_type = "mistral"
        num_attention_heads = 2

    with pytest.raises(ModelError, match="gemma3"):
        export.export_lora_gguf({}, Config(), 1.0, tmp_path / "a.gguf")


@pytest.fixture(scope="module")
def gemma_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_shared("meqsum")
    data_dir = tmp_path_factory.mktemp("gemma")
    old = {k: os.environ.get(k) for k in ("NOTEWARD_DATA_DIR", "NOTEWARD_CACHE_DIR")}
    os.environ["NOTEWARD_DATA_DIR"] = str(data_dir)
    os.environ["NOTEWARD_CACHE_DIR"] = str(data_dir / "cache")
    try:
        rc = cli.main(
            [
                "finetune",
                "--base",
                BASE,
                "--data",
                "meqsum",
                "--recipe",
                "reference-v2",
                "--name",
                NAME,
                "--limit",
                "1",
                "--dev-limit",
                "0",
                "--max-steps",
                "12",
                "--rank",
                "16",
                "--modules",
                "all-linear",
                "--lr",
                "2e-3",
                "--batch",
                "1",
                "--grad-accum",
                "1",
                "--max-seq-len",
                "256",
                "--threads",
                "2",
                "--no-progress",
                "--json",
                "--merge",
                "Q8_0",
            ]
        )
        record = pipeline.work_dir(NAME) / "run.json"
        run = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
        (example,) = pipeline.build_training_set(
            ["meqsum"], 1234, 216, limit=1, recipe="reference-v2"
        )
        yield {"rc": rc, "run": run, "example": example, "data_dir": data_dir}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def in_gemma(gemma_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("NOTEWARD_DATA_DIR", str(gemma_run["data_dir"]))
    monkeypatch.setenv("NOTEWARD_CACHE_DIR", str(gemma_run["data_dir"] / "cache"))
    return gemma_run


@pytest.mark.slow
@pytest.mark.shared_data
def test_gemma3_run_writes_a_gemma3_adapter_and_a_pinned_q8_0_merge(
    in_gemma: dict[str, Any],
) -> None:
    assert in_gemma["rc"] == 0
    run = in_gemma["run"]
    assert run["train"]["steps"] == 12 and run["train"]["last_loss"] < run["train"]["first_loss"]
    adapter = Path(run["adapter"])
    assert _reader_field(adapter, "general.architecture") == "gemma3"
    assert _reader_field(adapter, "adapter.type") == "lora"
    entry = load_manifest().get(NAME)
    assert entry.prompt_style == "chat" and entry.raw["merge"]["type"] == "Q8_0"
    merged = list((in_gemma["data_dir"] / "cache" / "models" / "merged").glob("*.gguf"))
    assert len(merged) == 1 and sha256_file(merged[0]) == entry.raw["merge"]["sha256"]
    assert _reader_field(merged[0], "general.architecture") == "gemma3"


@pytest.mark.slow
@pytest.mark.shared_data
def test_llama_cpp_runs_the_merged_gemma3_and_stops_at_end_of_turn(
    in_gemma: dict[str, Any],
) -> None:
    """The runtime wraps the prompt in Gemma's turns (the GGUF has no template) and stops at <end_of_turn>."""
    from noteward.llm.runtime import ModelRuntime

    ex = in_gemma["example"]
    with ModelRuntime(NAME, threads=2, n_ctx=1024) as rt:
        prompt = rt.format_prompt(ex.prompt())
        assert prompt.startswith("<start_of_turn>user\n") and prompt.endswith(
            "<start_of_turn>model\n"
        )
        res = rt.generate(prompt, max_tokens=120)
    assert res.finish_reason == "stop"
    assert "<end_of_turn>" not in res.text and "<start_of_turn>" not in res.text
    assert res.text.strip() == ex.target().strip()  # learned by heart: the export kept the layout
