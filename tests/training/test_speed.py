"""`noteward bench decode`: the fine-tuned model's tokens/s against its base, measured in one run.

Only the shape of the report is tested (rows, ratios, which file each row ran); the figures
themselves are the benchmark's to print, never a test's to assert.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.slow]


def test_bench_decode_compares_base_adapter_and_merged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from noteward import cli

    monkeypatch.setenv("NOTEWARD_CACHE_DIR", str(tmp_path / "cache"))
    assert (
        cli.main(
            [
                "bench",
                "decode",
                "--model",
                "smollm2-135m-clinical",
                "--repeat",
                "1",
                "--tokens",
                "8",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # the shipped default pins its merge: the merged file runs, the adapter at load beside it
    for label in ("base", "adapter at load", "merged Q8_0 (pinned)"):
        assert label in out
    from noteward.training.speed import decode_speed

    res = decode_speed("smollm2-135m-clinical", threads=2, repeat=1, max_tokens=8)
    rows = res["rows"]
    assert rows["base"]["ratio_to_base"] == 1.0 and rows["base"]["file"].endswith("Q4_1.gguf")
    assert rows["merged Q8_0 (pinned)"]["file"].endswith("-q8_0.gguf")
    assert rows["adapter at load"]["file"].endswith("Q4_1.gguf")
    assert all(r["tokens_per_s"] > 0 and r["generated_tokens"] > 0 for r in rows.values())
    # the merged file was built (on first use) into the cache folder, not into the repository
    assert list((tmp_path / "cache").rglob("*-q8_0.gguf"))


def test_bench_decode_refuses_a_base_model() -> None:
    from noteward.core.errors import UsageError
    from noteward.training.speed import decode_speed

    with pytest.raises(UsageError, match="base model"):
        decode_speed("smollm2-135m-instruct-q4_1")
