"""`noteward finetune` end to end on the smallest real base (SmolLM2 135M Q4_1).

A handful of examples, two optimizer steps, short sequences: the run builds the data,
trains LoRA on the CPU, checkpoints, exports a GGUF adapter, writes the card and the
manifest overlay; llama-cpp-python then loads base + adapter and generates, and its logits
match the peft model's (which checks the Q/K row permutation of the export).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noteward import cli
from noteward.core.errors import UsageError
from noteward.llm.manifest import sha256_file
from noteward.training import pipeline, trainer
from tests.conftest import require_shared

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

NAME = "tiny-test"
BASE = "smollm2-135m-instruct-q4_1"


@pytest.fixture(scope="module")
def run_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny fine-tuning run through the CLI, then a resume that adds one step."""
    require_shared("synthea_fhir")
    data_dir = tmp_path_factory.mktemp("nwdata")
    old = {k: os.environ.get(k) for k in ("NOTEWARD_DATA_DIR", "NOTEWARD_CACHE_DIR")}
    os.environ["NOTEWARD_DATA_DIR"] = str(data_dir)
    os.environ["NOTEWARD_CACHE_DIR"] = str(data_dir / "cache")  # the merged weights go here
    args = [
        "finetune", "--base", BASE, "--data", "meqsum,synthea", "--name", NAME,
        "--limit", "4", "--max-seq-len", "512", "--batch", "1", "--grad-accum", "1",
        "--lr", "5e-3", "--modules", "all-linear", "--threads", "2", "--no-progress", "--json",
        "--merge", "Q8_0",
    ]
    try:
        rc1 = cli.main(args + ["--max-steps", "2"])
        run1 = json.loads((pipeline.work_dir(NAME) / "run.json").read_text(encoding="utf-8"))
        rc2 = cli.main(args + ["--max-steps", "3", "--resume"])
        run2 = json.loads((pipeline.work_dir(NAME) / "run.json").read_text(encoding="utf-8"))
        yield {"rc": (rc1, rc2), "run1": run1, "run2": run2, "data_dir": data_dir}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def in_run(run_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The tiny run, with NOTEWARD_DATA_DIR pointing at its user data folder."""
    monkeypatch.setenv("NOTEWARD_DATA_DIR", str(run_env["data_dir"]))
    monkeypatch.setenv("NOTEWARD_CACHE_DIR", str(run_env["data_dir"] / "cache"))
    return run_env


def test_run_trains_checkpoints_and_resumes(in_run: dict[str, Any]) -> None:
    assert in_run["rc"] == (0, 0)
    r1, r2 = in_run["run1"], in_run["run2"]
    assert r1["train"]["steps"] == 2 and r1["train"]["stopped_by"] == "max-steps"
    assert r1["train"]["first_loss"] is not None and r1["train"]["last_loss"] is not None
    # the resumed run continued from step 2 and did one more micro-batch, not three
    assert r2["train"]["steps"] == 3 and r2["train"]["micro_batches"] == 1
    assert r2["losses"][:2] == r1["losses"]
    assert (pipeline.work_dir(NAME) / trainer.CHECKPOINT_FILE).exists()
    assert r2["balance"]["examples"] == 4


def test_adapter_card_and_overlay(in_run: dict[str, Any]) -> None:
    run = in_run["run2"]
    adapter = Path(run["adapter"])
    assert adapter.parent == pipeline.models_dir()
    assert 100_000 < adapter.stat().st_size < 20_000_000
    assert sha256_file(adapter) == run["adapter_sha256"]
    overlay = json.loads((pipeline.models_dir() / "manifest.json").read_text(encoding="utf-8"))
    entry = next(m for m in overlay["models"] if m["id"] == NAME)
    assert entry["base"] == BASE and entry["adapter"]["sha256"] == run["adapter_sha256"]
    assert "default" not in overlay
    card = Path(run["card"]).read_text(encoding="utf-8")
    for needle in (run["adapter_sha256"], BASE, "CC BY 4.0", "CC0", "Optimizer steps: 3", "MeQSum"):
        assert needle in card
    # the llm layer sees the new entry through its manifest overlay and verifies its hash
    from noteward.llm.manifest import load_manifest

    m = load_manifest().get(NAME)
    assert m.adapter_file() is not None and m.adapter_file().path == adapter  # type: ignore[union-attr]
    # the adapter folded into the base weights, pinned by hash, is what the app runs
    assert entry["merge"]["type"] == "Q8_0" and entry["merge"]["sha256"] == run["merge"]["sha256"]
    from noteward.llm.manifest import resolve_model

    resolved = resolve_model(NAME)
    assert resolved.merged and resolved.adapter_path is None
    assert resolved.path.parent == in_run["data_dir"] / "cache" / "models" / "merged"
    assert sha256_file(resolved.path) == entry["merge"]["sha256"]


@pytest.fixture(scope="module")
def llama_pair(run_env: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """llama.cpp on the packaged base, without and with the exported adapter."""
    from noteward.training.llama_compat import load_llama

    base_path, _ = pipeline.resolve_base(BASE)
    adapter = run_env["run2"]["adapter"]
    kw: dict[str, Any] = dict(n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
    pair = load_llama(str(base_path), **kw), load_llama(str(base_path), lora_path=adapter, **kw)
    yield pair
    for llm in pair:  # now, not whenever the garbage collector finds the adapter's cycle
        llm.close()


def test_llama_cpp_loads_the_adapter_and_generates(llama_pair: tuple[Any, Any]) -> None:
    _, tuned = llama_pair
    out = tuned.create_chat_completion(
        messages=[{"role": "user", "content": "Summarize: [S1] Patient takes lisinopril 10 mg daily."}],
        max_tokens=16,
        temperature=0.0,
    )
    assert out["choices"][0]["message"]["content"].strip()
    assert out["usage"]["completion_tokens"] > 0


def test_llama_cpp_logits_match_the_peft_model(in_run: dict[str, Any], llama_pair: tuple[Any, Any]) -> None:
    import numpy as np
    import torch

    base_llm, tuned_llm = llama_pair
    base_path, _ = pipeline.resolve_base(BASE)
    model, tok = trainer.load_base(base_path, threads=2)
    saved = in_run["run2"]["config"]
    cfg = trainer.TrainConfig(**{**saved, "target_modules": tuple(saved["target_modules"])})
    peft_model = trainer.add_lora(model, cfg)
    state = torch.load(pipeline.work_dir(NAME) / trainer.CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    missing = peft_model.load_state_dict(state["lora"], strict=False)
    assert not [k for k in missing.unexpected_keys]
    peft_model.eval()
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Summarize: [S1] The patient has type 2 diabetes and takes metformin."}],
        tokenize=False,
        add_generation_prompt=True,
    ) + "Problems:\n- "
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        hf_tuned = peft_model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
        with peft_model.disable_adapter():
            hf_base = peft_model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()

    def last_logits(llm: Any) -> Any:
        llm.reset()
        llm.eval(ids)
        return np.array(llm.scores[llm.n_tokens - 1])

    cpp_base, cpp_tuned = last_logits(base_llm), last_logits(tuned_llm)
    adapter_effect = np.abs(hf_tuned - hf_base).mean()
    assert adapter_effect > 0.2, "the tiny run should have moved the logits"
    # the merged GGUF (adapter folded in at Q8_0) computes what base + adapter computes
    from noteward.llm.manifest import merged_cache_path
    from noteward.training.llama_compat import load_llama

    merged_path = merged_cache_path(NAME, in_run["run2"]["adapter_sha256"], "Q8_0")
    merged = load_llama(str(merged_path), n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
    try:
        cpp_merged = last_logits(merged)
    finally:
        merged.close()
    assert np.abs(cpp_merged - cpp_tuned).mean() < 0.25 * adapter_effect
    assert np.corrcoef(cpp_merged, hf_tuned)[0, 1] > np.corrcoef(cpp_merged, hf_base)[0, 1]
    # llama.cpp (Q4_1 kernels) vs transformers (de-quantized float32): same model, small noise
    assert np.abs(cpp_tuned - hf_tuned).mean() < 0.5 * adapter_effect
    assert np.abs(cpp_base - hf_base).mean() < 0.5 * adapter_effect
    assert np.corrcoef(cpp_tuned, hf_tuned)[0, 1] > np.corrcoef(cpp_tuned, hf_base)[0, 1]


def test_resume_refuses_a_different_base_or_data(in_run: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="same --base and --data"):
        pipeline.finetune(BASE, ["meqsum"], NAME, trainer.TrainConfig(max_steps=1), resume=True, limit=2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "pubmed", "--name", "x1"], "Unknown training source"),
        (["--data", "meqsum", "--name", "Bad Name!"], "not usable"),
        (["--data", "meqsum", "--name", "x1", "--modules", "lm_head"], "Unknown LoRA module"),
        (["--data", "meqsum", "--name", "x1", "--max-steps", "-1"], "zero or positive"),
        (["--data", "vault", "--name", "x1"], "needs --vault"),
    ],
)
def test_bad_arguments_get_clear_messages(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["finetune", "--base", BASE, *argv]) == UsageError.exit_code
    assert message in capsys.readouterr().err


def test_prepared_run_trains_elsewhere_and_finishes_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--prepare-only, then `python -m noteward.training.job` (as on a GPU box), then --resume.

    The job gets only the run folder and the base GGUF; its weights-only snapshot of step 1
    is exported here and gives the same adapter as the job's own step-1 weights.
    """
    import torch

    from noteward.training import job

    require_shared("synthea_fhir")
    monkeypatch.setenv("NOTEWARD_DATA_DIR", str(tmp_path))
    name = "tiny-job"
    args = [
        "finetune", "--base", BASE, "--data", "meqsum,synthea", "--name", name, "--limit", "4",
        "--max-seq-len", "512", "--batch", "1", "--grad-accum", "1", "--lr", "5e-3", "--threads", "2",
        "--no-progress", "--device", "cpu",
    ]
    assert cli.main(args + ["--max-steps", "2", "--prepare-only", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    wd = Path(info["workdir"])
    assert info["examples"] >= 1 and info["examples"] + info["skipped"] == 4
    assert (wd / "encoded.pt").exists()
    assert not (wd / trainer.CHECKPOINT_FILE).exists()  # nothing trained yet

    assert job.main([str(wd), "--base-gguf", info["base_gguf"], "--device", "cpu", "--snapshots", "1"]) == 0
    assert "trained 2/2 steps" in capsys.readouterr().out
    record = json.loads((wd / "job.json").read_text(encoding="utf-8"))
    assert record["steps"] == 2 and record["hardware"].startswith("CPU")
    snap = torch.load(wd / "snapshot-1.pt", map_location="cpu", weights_only=False)
    assert snap["step"] == 1 and "optimizer" not in snap
    assert {v.dtype for v in snap["lora"].values()} == {torch.float16}
    assert (wd / "snapshot-2.pt").exists()  # the last step is always kept

    # finish the step-1 snapshot here: export, card, overlay
    (wd / trainer.CHECKPOINT_FILE).write_bytes((wd / "snapshot-1.pt").read_bytes())
    assert cli.main(args + ["--max-steps", "2", "--stop-after-step", "1", "--resume", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert (run["train"]["steps"], run["train"]["target_steps"]) == (1, 2)
    assert run["train"]["stopped_by"] == "stop-after"
    assert Path(run["adapter"]).stat().st_size > 0
    card = Path(run["card"]).read_text(encoding="utf-8")
    assert "- Hardware: CPU (2 threads); no GPU" in card


def test_job_refuses_a_folder_without_a_prepared_set(tmp_path: Path) -> None:
    from noteward.training import job

    with pytest.raises(SystemExit, match="prepare-only"):
        job.main([str(tmp_path), "--base-gguf", str(tmp_path / "none.gguf")])


def test_device_cuda_without_a_gpu_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UsageError, match="no CUDA GPU"):
        trainer.resolve_device("cuda")
    assert trainer.resolve_device("auto") == "cpu"
