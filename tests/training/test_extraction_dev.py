"""What the development split scores for a full fine-tune: the rank-r extraction merged back
into the base (what ships), and the epoch chosen on it rather than on the float weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_the_extraction_merged_back_is_base_plus_its_low_rank_update() -> None:
    from noteward.training import export

    g = torch.Generator().manual_seed(0)
    key = "model.layers.0.self_attn.q_proj.weight"
    base = {key: torch.randn(12, 8, generator=g)}
    low = torch.randn(12, 2, generator=g) @ torch.randn(2, 8, generator=g)  # a rank-2 update
    full = torch.randn(12, 8, generator=g)  # a full-rank one
    for update, rank, exact in ((low, 2, True), (full, 2, False), (full, 8, True)):
        tuned = {key: base[key] + update}
        lora = export.lora_from_delta(base, tuned, rank)
        merged = export.merge_extraction(base, lora)
        assert set(merged) == {key} and merged[key].dtype == base[key].dtype
        err = float((merged[key] - tuned[key]).norm() / update.norm())
        assert (err < 1e-5) if exact else (0.05 < err < 1.0)
        # the merge-back is what delta_kept measures
        kept = 1 - float(
            ((tuned[key] - merged[key]).double() ** 2).sum() / (update.double() ** 2).sum()
        )
        assert kept == pytest.approx(export.delta_kept(base, tuned, lora), abs=1e-4)


def test_the_epoch_is_chosen_on_the_extraction_when_it_was_scored() -> None:
    from noteward.training.gpu_job import _choose, _score

    def dev(mts: float, aci: float) -> dict[str, dict[str, float]]:
        return {"mts_dialog": {"rougeL": mts}, "aci_bench/whole_note": {"rougeLsum": aci}}

    curve = [
        {"epoch": 1, "dev": dev(0.30, 0.30), "dev_extracted": dev(0.20, 0.20)},
        {"epoch": 2, "dev": dev(0.25, 0.25), "dev_extracted": dev(0.24, 0.24)},
    ]
    assert (
        _choose(curve) == 1
    )  # epoch 2: its extraction scores best, though its float weights do not
    assert _score({"curve": curve, "chosen_epoch": 2}) == pytest.approx(0.24)
    # a LoRA run ships its own matrices: no extraction, the float scores decide
    lora_curve = [{k: v for k, v in row.items() if k != "dev_extracted"} for row in curve]
    assert _choose(lora_curve) == 0
