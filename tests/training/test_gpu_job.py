"""`installer/gpu_train.sh` end to end on the CPU: prepare, the device calls, then `finetune --from-job`.

A tiny run of the real script on both packaged bases (de-quantized by transformers): four
training examples each, two epochs of a full fine-tune of the linear layers, one MTS-Dialog
item and one ACI-Bench division scored after each epoch. Gemma travels slimmed (embedding
rows its data never uses zeroed, then zipped) and its job masks those tokens out. The bases
travel as pieces; the stash call keeps them on the machine and the run call brings the last.
The carried pure-Python packages (gguf, rouge-score) are imported from the script's unpacked
copy. The chosen base's adapter comes back in pieces, is joined, registered, merged at Q8_0
into the cache folder with its hash pinned, and llama.cpp runs it.
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
GEMMA_NAME = "tiny-gpu-gemma"
GEMMA = "gemma3-270m-q4_k_m"
BASE_OF = {NAME: BASE, GEMMA_NAME: GEMMA}


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
        "NOTEWARD_GPU_BASES": f"{BASE}:{NAME} {GEMMA}:{GEMMA_NAME}",
        "NOTEWARD_GPU_PIECE_BYTES": "40000000",
        "NOTEWARD_GPU_BUDGET_S": "100000",
        "PY": sys.executable,
        "OUT": str(tmp / "out"),
    }
    (tmp / "out").mkdir()
    script = str(ROOT / "installer" / "gpu_train.sh")
    carry = tmp / "gpu_carry"
    steps = [
        [script, "prepare", "--limit", "4", "--dev-limit", "1", "--max-seq-len", "384", "--rank", "8",
         "--batch", "2", "--grad-accum", "1", "--epochs", "2", "--full", "--lr", "1e-4", "--threads", "2"],
        [script, "stash"],
        [script, "run", "--device", "cpu", "--threads", "2", "--dev-items", "2", "--dev-max-new-tokens", "12", "--dev-score", "both"],
    ]
    logs = []
    for cmd in steps:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3000)
        logs.append(done.stdout + done.stderr)
        assert done.returncode == 0, logs[-1][-3000:]
        if cmd[1] == "stash":  # what the stash calls carried stays on the machine; the run call brings the last piece
            for piece in sorted((carry / "pieces").glob("piece.*"))[:-1]:
                piece.unlink()
    chosen = json.loads((tmp / "out" / "job.json").read_text(encoding="utf-8"))["name"]
    old = {k: os.environ.get(k) for k in ("NOTEWARD_DATA_DIR", "NOTEWARD_CACHE_DIR")}
    os.environ.update({k: env[k] for k in old})
    try:
        rc = cli.main(["finetune", "--base", BASE_OF[chosen], "--data", "mts-dialog,aci-bench,meqsum,synthea",
                       "--recipe", "reference-v2", "--name", chosen, "--from-job", str(tmp / "out"), "--merge", "Q8_0"])
        yield {"tmp": tmp, "logs": logs, "rc": rc, "out": tmp / "out", "chosen": chosen, "carry": carry}
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


def test_prepare_plans_calls_under_64_mib(in_job: dict[str, Any]) -> None:
    plan = [line for line in in_job["logs"][0].splitlines() if line.startswith("call ")]
    assert len(plan) >= 3 and "stash" in plan[0] and "run" in plan[-1]
    sizes = [int(line.rsplit("(", 1)[1].split()[0]) for line in plan]
    assert all(0 < b <= 64 * 2**20 for b in sizes)
    # Gemma travelled slimmed: far fewer embedding rows than its 262,144 tokens
    slim = json.loads((in_job["carry"] / "bundle" / GEMMA_NAME / "slim.json").read_text(encoding="utf-8"))
    assert slim["rows"] == 262144 and 0 < slim["kept"] < 20000 and slim["zip_bytes"] < 120_000_000


def test_both_bases_trained_and_the_choice_is_recorded(in_job: dict[str, Any]) -> None:
    record = json.loads((in_job["out"] / "job.json").read_text(encoding="utf-8"))
    cands = {c["name"]: c for c in record["candidates"]}
    assert set(cands) == {NAME, GEMMA_NAME} and not any(c["skipped"] for c in cands.values())
    assert cands[GEMMA_NAME]["arch"] == "gemma3" and cands[NAME]["arch"] == "llama"
    assert record["chosen_base"] == in_job["chosen"] and record["base"] == BASE_OF[in_job["chosen"]]
    best = max(cands.values(), key=lambda c: c["dev_score"])
    assert best["name"] == in_job["chosen"]
    assert "chosen on the development split" in in_job["logs"][2] and "OK" in in_job["logs"][2]


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
    assert record["estimate"]["total_s"] > 0 and record["train_tokens"] > 0


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
    name = in_job["chosen"]
    run = json.loads((pipeline.work_dir(name) / "run.json").read_text(encoding="utf-8"))
    assert [r["epoch"] for r in run["curve"]] == [1, 2]
    record = json.loads((in_job["out"] / "job.json").read_text(encoding="utf-8"))
    assert run["adapter_sha256"] == record["adapter"]["sha256"] == sha256_file(Path(run["adapter"]))
    assert {b["name"] for b in run["train"]["bases_tried"]} == {NAME, GEMMA_NAME}
    entry = load_manifest().get(name)
    assert entry.raw["recipe"] == "reference-v2" and entry.raw["merge"]["type"] == "Q8_0"
    card = Path(run["card"]).read_text(encoding="utf-8")
    assert "## Loss and development curve" in card and "reference-v2" in card

    from noteward.llm import reference
    from noteward.llm.runtime import ModelRuntime

    with ModelRuntime(name, threads=2, n_ctx=1024) as rt:
        res = rt.generate(rt.format_prompt(reference.question_prompt("Who makes cetirizine?")), max_tokens=24)
    assert res.generated_tokens > 0
    merged = list((in_job["tmp"] / "data" / "cache" / "models" / "merged").glob("*.gguf"))  # not the assembled Gemma
    assert merged and sha256_file(merged[0]) == entry.raw["merge"]["sha256"]


def test_each_epoch_is_also_scored_as_the_extraction_that_ships(in_job: dict[str, Any]) -> None:
    """A full fine-tune ships a rank-r extraction of its update: every epoch is scored on the
    development split both as trained (float) and with the extraction merged back into the
    base, and the epoch and base are chosen on the extraction."""
    record = json.loads((in_job["out"] / "job.json").read_text(encoding="utf-8"))
    assert record["chosen_on"] == "extracted"
    for row in record["curve"]:
        assert set(row["dev_extracted"]) == set(row["dev"]) and 0.0 < row["extraction_kept"] <= 1.0
        assert set(row["dev_extracted"]["mts_dialog"]) >= {"rouge1", "rougeL", "rougeLsum", "copied_4gram_share"}
    assert any(line.startswith("epoch 1:") and "extracted" in line for line in in_job["logs"][2].splitlines())
    for cand in record["candidates"]:
        assert all("dev_extracted" in row for row in cand["curve"])
