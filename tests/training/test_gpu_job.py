"""`installer/gpu_train.sh` end to end on the CPU: prepare, the two device calls, then `finetune --from-job`.

A tiny run of the real script on the packaged SmolLM2 base (dequantized by transformers):
four training examples, two epochs of a full fine-tune of the linear layers, one
MTS-Dialog item and one ACI-Bench division scored after each epoch. The carried
pure-Python packages (gguf, rouge-score) are imported from the script's unpacked copy.
The adapter comes back in pieces, is joined, registered, merged at Q8_0 into the cache
folder with its hash pinned, and llama.cpp runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noteward import cli
from noteward.llm.manifest import load_manifest, sha256_file
from noteward.training import pipeline
from tests.conftest import require_shared

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

ROOT = Path(__file__).resolve().parents[2]
NAME = "tiny-gpu-job"
BASE = "smollm2-135m-instruct-q4_1"


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_shared("mts_dialog")
    tmp = tmp_path_factory.mktemp("gpujob")
    env = {
        **os.environ,
        "NOTEWARD_DATA_DIR": str(tmp / "data"),
        "NOTEWARD_CACHE_DIR": str(tmp / "data" / "cache"),
        "NOTEWARD_GPU_CARRY": str(tmp / "gpu_carry"),
        "NOTEWARD_GPU_STASH": str(tmp / "stash"),
        "PY": sys.executable,
        "OUT": str(tmp / "out"),
    }
    (tmp / "out").mkdir()
    script = str(ROOT / "installer" / "gpu_train.sh")
    steps = [
        [script, "prepare", NAME, "--limit", "4", "--dev-limit", "1", "--max-seq-len", "384", "--rank", "8",
         "--batch", "2", "--grad-accum", "1", "--epochs", "2", "--full", "--lr", "1e-4", "--threads", "2"],
        [script, "stash"],
        [script, "run", "--device", "cpu", "--threads", "2", "--dev-items", "2", "--dev-max-new-tokens", "12"],
    ]
    logs = []
    for cmd in steps:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        logs.append(done.stdout + done.stderr)
        assert done.returncode == 0, logs[-1][-3000:]
    old = {k: os.environ.get(k) for k in ("NOTEWARD_DATA_DIR", "NOTEWARD_CACHE_DIR")}
    os.environ.update({k: env[k] for k in old})
    try:
        rc = cli.main(["finetune", "--base", BASE, "--data", "mts-dialog,aci-bench,meqsum,synthea",
                       "--recipe", "reference-v2", "--name", NAME, "--from-job", str(tmp / "out"), "--merge", "Q8_0"])
        yield {"tmp": tmp, "logs": logs, "rc": rc, "out": tmp / "out"}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def in_job(job: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("NOTEWARD_DATA_DIR", str(job["tmp"] / "data"))
    monkeypatch.setenv("NOTEWARD_CACHE_DIR", str(job["tmp"] / "data" / "cache"))
    return job


def test_the_job_writes_curve_timings_and_an_adapter_in_returnable_pieces(in_job: dict[str, Any]) -> None:
    out = in_job["out"]
    record = json.loads((out / "job.json").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in record["curve"]] == [1, 2]
    assert len(record["train"]["epoch_losses"]) == 2 and all(r["train_loss"] > 0 for r in record["curve"])
    dev = record["curve"][0]["dev"]
    assert record["curve"][0]["scored"] and {"mts_dialog", "aci_bench/subjective", "aci_bench/whole_note"} <= set(dev)
    assert set(dev["mts_dialog"]) >= {"rouge1", "rouge2", "rougeL", "rougeLsum", "copied_4gram_share"}
    assert record["timing"]["job_s"] > 0 and record["timing"]["train_s"] > 0 and record["device"] == "cpu"
    assert record["config"]["full"] and record["config"]["recipe"] == "reference-v2"
    assert 0.0 < record["extraction_kept"] <= 1.0
    # what comes back from the device: at most 8 files of at most 16 MiB, no deeper folders
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in files)
    assert not (out / "work").exists()
    assert "sha256" in record["adapter"] and record["adapter"]["parts"]
    assert "OK" in in_job["logs"][2]  # the base GGUF joined from its two pieces passed its hash


def test_carried_packages_bring_their_metadata(in_job: dict[str, Any]) -> None:
    """transformers reads the GGUF only when gguf's version is found in its metadata."""
    import importlib.metadata

    site = in_job["tmp"] / "stash" / "site"
    found = {
        d.metadata["Name"].lower().replace("_", "-"): d.version
        for d in importlib.metadata.distributions(path=[str(site)])
    }
    assert {"gguf", "rouge-score", "nltk", "absl-py", "six"} <= set(found)
    assert (site / "gguf" / "__init__.py").exists() and (site / "rouge_score" / "rouge_scorer.py").exists()


def test_from_job_registers_the_adapter_and_the_merged_q8_0_model_runs(in_job: dict[str, Any]) -> None:
    assert in_job["rc"] == 0
    run = json.loads((pipeline.work_dir(NAME) / "run.json").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in run["curve"]] == [1, 2]
    record = json.loads((in_job["out"] / "job.json").read_text(encoding="utf-8"))
    assert run["adapter_sha256"] == record["adapter"]["sha256"] == sha256_file(Path(run["adapter"]))
    entry = load_manifest().get(NAME)
    assert entry.raw["recipe"] == "reference-v2" and entry.raw["merge"]["type"] == "Q8_0"
    card = Path(run["card"]).read_text(encoding="utf-8")
    assert "## Loss and development curve" in card and "reference-v2" in card

    from noteward.llm import reference
    from noteward.llm.runtime import ModelRuntime

    with ModelRuntime(NAME, threads=2, n_ctx=1024) as rt:
        res = rt.generate(rt.format_prompt(reference.question_prompt("Who makes cetirizine?")), max_tokens=24)
    assert res.generated_tokens > 0
    merged = list((in_job["tmp"] / "data" / "cache").rglob("*.gguf"))
    assert merged and sha256_file(merged[0]) == entry.raw["merge"]["sha256"]
