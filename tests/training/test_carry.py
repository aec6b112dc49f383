"""Carrying bases to a lent GPU: pieces that fill device calls, the slimmed Gemma, the vocabulary mask,
and the GPU job's own time budget (estimate printed first; a base that will not fit is skipped)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest


def test_pack_cuts_files_into_pieces_and_unpack_joins_them_checked(tmp_path: Path) -> None:
    from noteward.training import carry

    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf.zip"
    a.write_bytes(bytes(range(256)) * 40)  # 10,240 bytes
    b.write_bytes(b"x" * 5000)
    record = carry.pack([a, b], tmp_path / "pieces", 4096)
    assert record["pieces"] == [
        f"piece.{n:02d}" for n in range(4)
    ]  # 15,240 bytes in 4,096-byte pieces
    assert all((tmp_path / "pieces" / p).stat().st_size <= 4096 for p in record["pieces"])
    out = carry.unpack(tmp_path / "pieces", record, tmp_path / "joined")
    assert [p.read_bytes() for p in out] == [a.read_bytes(), b.read_bytes()]
    last = tmp_path / "pieces" / "piece.03"
    size = last.stat().st_size
    last.unlink()
    with pytest.raises(FileNotFoundError, match="piece.03"):
        carry.unpack(tmp_path / "pieces", record, tmp_path / "again")
    last.write_bytes(b"y" * size)  # damaged
    with pytest.raises(ValueError, match="sha256"):
        carry.unpack(tmp_path / "pieces", record, tmp_path / "again")
    last.write_bytes(b"x" * 10)  # cut short
    with pytest.raises(ValueError, match="short"):
        carry.unpack(tmp_path / "pieces", record, tmp_path / "again")


@pytest.mark.slow
def test_slim_gguf_zeroes_unused_embedding_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    """On the packaged SmolLM2: kept rows and every other tensor byte-identical, dropped rows zero."""
    import gguf
    import numpy as np

    from noteward.training import carry
    from noteward.training.pipeline import resolve_base

    base, _ = resolve_base("smollm2-135m-instruct-q4_1")
    info = carry.slim_gguf(base, {0, 1, 2, 500, 4000}, tmp_path / "slim.gguf.zip")
    assert info["kept"] == 5 and info["rows"] == 49152
    assert (tmp_path / "slim.gguf.zip").stat().st_size < base.stat().st_size * 0.9
    path = carry.unslim(tmp_path / "slim.gguf.zip", tmp_path / "x", info["sha256"])
    old, new = gguf.GGUFReader(base), gguf.GGUFReader(path)
    for t_old, t_new in zip(old.tensors, new.tensors, strict=True):
        if t_old.name != carry.EMBEDDING:
            assert np.array_equal(t_old.data, t_new.data)
            continue
        emb = gguf.quants.dequantize(t_new.data, t_new.tensor_type)
        ref = gguf.quants.dequantize(t_old.data, t_old.tensor_type)
        zero = ~np.any(emb != 0, axis=1)
        assert set(np.flatnonzero(~zero).tolist()) == {0, 1, 2, 500, 4000}
        assert np.array_equal(emb[[0, 500, 4000]], ref[[0, 500, 4000]])
    with pytest.raises(ValueError, match="sha256"):
        carry.unslim(tmp_path / "slim.gguf.zip", tmp_path / "y", "0" * 64)


def test_mask_unused_vocab_keeps_zero_rows_out_of_the_softmax() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from noteward.training import trainer

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            tie_word_embeddings=True,
        )
    )
    assert trainer.mask_unused_vocab(model) == 0  # a whole vocabulary: nothing masked
    with torch.no_grad():
        model.get_input_embeddings().weight[20:] = 0
    assert trainer.mask_unused_vocab(model) == 12
    ids = torch.tensor([[1, 2, 3, 4]])
    out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss)
    assert torch.isinf(out.logits[..., 20:]).all() and torch.isfinite(out.logits[..., :20]).all()
    out.loss.backward()  # gradients stay finite through the mask
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_gpu_job_skips_a_base_whose_estimate_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The estimate comes first, from the prepared set alone: no base is loaded for a skipped job."""
    import numpy as np

    from noteward.training import gpu_job, job, trainer
    from noteward.training.pipeline import resolve_base

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    ids = [1, 2, 3, 4] * 100
    encoded = [(ids, [-100] * 10 + ids[10:]) for _ in range(50)]
    job.save_compact(bundle, encoded, 0, trainer.TrainConfig(recipe="reference-v2", epochs=3))
    (bundle / "dev.json").write_text("[]", encoding="utf-8")
    assert np.load(bundle / "encoded.npz")["lengths"].sum() == 20000
    base, _ = resolve_base("smollm2-135m-instruct-q4_1")
    rc = gpu_job.main(
        [
            str(bundle),
            "--base-gguf",
            str(base),
            "--out",
            str(tmp_path / "out"),
            "--name",
            "x",
            "--base-id",
            "smollm2-135m-instruct-q4_1",
            "--deadline",
            str(time.time() + 5),
        ]
    )
    assert rc == 0
    record = json.loads((tmp_path / "out" / "job.json").read_text(encoding="utf-8"))
    assert record["skipped"].startswith("estimate") and record["estimate"]["epochs"] == 3
    assert record["estimate"]["tokens"] == 20000 and "adapter" not in record
    assert "skipped" in capsys.readouterr().out
