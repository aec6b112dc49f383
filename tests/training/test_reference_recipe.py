"""The reference-v2 recipe: targets are the references, the development split is fixed, turns end at <|im_end|>."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from noteward.llm import reference
from noteward.settings import shared_data_dir
from noteward.training import export, reference_data, trainer
from tests.conftest import require_shared

pytestmark = pytest.mark.shared_data

ALL = ["mts-dialog", "aci-bench", "meqsum", "synthea"]


@pytest.fixture(scope="module")
def sets() -> dict[str, list[reference_data.ReferenceExample]]:
    require_shared("mts_dialog")
    data = shared_data_dir()
    return {
        "train": reference_data.build_examples(ALL, data, max_tokens=4000),
        "dev": reference_data.build_examples(ALL, data, max_tokens=10**7, split="dev"),
        "dev_again": reference_data.build_examples(list(reversed(ALL)), data, max_tokens=10**7, split="dev", seed=7),
    }


def test_dev_split_is_fixed_disjoint_and_sized(sets: dict[str, Any]) -> None:
    dev, train = sets["dev"], sets["train"]
    mts = {e.ref for e in dev if e.source == "mts-dialog"}
    visits = {e.meta["visit"] for e in dev if e.source == "aci-bench"}
    assert len(mts) == 100 and len(visits) == 10
    assert {e.source for e in dev} == {"mts-dialog", "aci-bench"}
    assert {e.ref for e in sets["dev_again"]} == {e.ref for e in dev}  # not the seed, not the order
    train_visits = {e.meta["visit"] for e in train if e.source == "aci-bench"}
    assert not mts & {e.ref for e in train} and not visits & train_visits


def test_mts_targets_are_the_section_text_with_the_section_named(sets: dict[str, Any]) -> None:
    rows = {}
    with (shared_data_dir() / reference_data.data_mod.TRAIN_FILES["mts-dialog"]).open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rows[f"mts:{r['ID']}"] = r
    mts = [e for e in sets["train"] if e.source == "mts-dialog"]
    assert len(mts) >= 1000
    for e in mts[:50]:
        row = rows[e.ref]
        assert " ".join(e.target().split()) == " ".join(row["section_text"].split())
        assert reference.mts_section_name(row["section_header"]) in e.prompt().rsplit("\n", 1)[-1]
        assert "[S" not in e.target()


def test_aci_targets_are_note_divisions(sets: dict[str, Any]) -> None:
    aci = [e for e in sets["train"] if e.source == "aci-bench"]
    assert {e.kind for e in aci} == set(reference.ACI_DIVISIONS)
    for e in aci[:20]:
        divisions = reference.divide_aci_note(e.meta["note"])
        assert " ".join(e.target().split()) == " ".join(divisions[e.kind].split())
        assert e.prompt().endswith(reference.aci_prompt("", e.kind).rsplit("\n", 1)[-1])


def test_synthea_pairs_come_from_the_structured_truth(sets: dict[str, Any]) -> None:
    syn = [e for e in sets["train"] if e.source == "synthea"]
    assert {e.kind for e in syn} == {"synopsis", "problems", "medications"}
    for e in syn:
        assert not any(tag in e.target() for tag in ("(finding)", "(situation)")), e.target()
        if e.kind == "synopsis":
            assert "-year-old" in e.target() and ", seen on " in e.target()
        if e.kind == "medications":
            assert all("(started " in line for line in e.target().split("\n"))
    # the three evaluation patients are never read
    assert all(not reference_data.data_mod.is_eval_patient(e.ref) for e in syn)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from noteward.training.pipeline import resolve_base

    return trainer.load_tokenizer(resolve_base("smollm2-135m-instruct-q4_1")[0])


def test_turn_ends_with_im_end_and_the_loss_covers_it(tokenizer: Any) -> None:
    ex = reference_data.ReferenceExample("meqsum", "question", "meqsum:0", reference.question_prompt("Who makes X?"), "Who makes X?")
    cfg = trainer.TrainConfig(recipe="reference-v2", max_seq_len=512)
    ids, labels = trainer.encode(ex, tokenizer, cfg)  # type: ignore[misc]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert trainer.end_of_turn(tokenizer, "chat").startswith("<|im_end|>")
    target = [t for t in labels if t != -100]
    assert im_end in target and target.index(im_end) >= len(target) - 2
    assert tokenizer.decode(target[: target.index(im_end)]).strip() == "Who makes X?"
    assert ids.count(im_end) == labels.count(im_end) + 2  # system and user turns end in the prompt


@pytest.mark.slow
def test_llama_cpp_stops_generating_at_im_end() -> None:
    """The runtime ends a turn at <|im_end|> (an end-of-generation token for this GGUF)."""
    import llama_cpp

    from noteward.llm.runtime import ModelRuntime

    with ModelRuntime("smollm2-135m-instruct-q4_1", threads=2, n_ctx=1024) as rt:
        im_end = rt.llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
        assert len(im_end) == 1 and llama_cpp.llama_vocab_is_eog(rt.llm._model.vocab, im_end[0])
        res = rt.generate(rt.format_prompt(reference.question_prompt("Who makes cetirizine?")), max_tokens=200)
        assert res.finish_reason == "stop" and "<|im_end|>" not in res.text and "<|im_start|>" not in res.text


def test_low_rank_extraction_carries_a_low_rank_update() -> None:
    import torch

    torch.manual_seed(0)
    base = {"model.layers.0.self_attn.q_proj.weight": torch.randn(12, 10)}
    update = torch.randn(12, 3) @ torch.randn(3, 10)  # rank 3
    tuned = {k: v + update for k, v in base.items()}
    lora = export.lora_from_delta(base, tuned, rank=3)
    a = lora["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    b = lora["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
    assert a.shape == (3, 10) and b.shape == (12, 3)
    assert torch.allclose(b @ a, update, atol=1e-5)
    assert export.delta_kept(base, tuned, lora) == pytest.approx(1.0)
    assert export.delta_kept(base, tuned, export.lora_from_delta(base, tuned, rank=1)) < 0.99


def test_epochs_plan_the_steps_and_record_a_loss_per_epoch(tmp_path: Path) -> None:
    """Two epochs over three tiny sequences on a real (tiny) Llama: one loss per epoch, on_epoch twice."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    encoded = [([1, 2, 3, 4], [-100, -100, 3, 4]), ([5, 6, 7], [-100, 6, 7]), ([8, 9, 10, 11], [-100, 9, 10, 11])]
    cfg = trainer.TrainConfig(rank=4, alpha=8, target_modules=("q_proj",), micro_batch=2, grad_accum=1,
                              epochs=2, warmup_steps=1, threads=1, checkpoint_every=100, full=True)
    seen: list[int] = []
    _m, res = trainer.train_encoded(model, encoded, 0, cfg, tmp_path, show_bar=False,
                                    on_epoch=lambda _m, st: seen.append(st["epoch"]))
    assert res.target_steps == 4 and res.steps == 4 and res.stopped_by == "max-steps"  # the planned 2 epochs
    assert seen == [1, 2] and len(res.epoch_losses) == 2
    # the full fine-tune trained the q_proj weight and nothing else
    assert {n for n, p in _m.named_parameters() if p.requires_grad} == {"model.layers.0.self_attn.q_proj.weight"}


@pytest.mark.parametrize(
    "recipe",
    ["reference-v2", "grounded-v1"],
)
def test_the_manifest_entry_names_the_recipe_the_run_was_trained_on(recipe: str) -> None:
    from noteward.training.pipeline import FinetuneRun, manifest_entry

    run = FinetuneRun(
        name="x-reference", base="smollm2-135m-instruct-q4_1", sources=ALL, adapter="x-lora.gguf",
        adapter_sha256="ab" * 32, adapter_size=10, card="cards/x.md", manifest="manifest.json", balance={},
        train={"steps": 1, "seconds": 1.0}, config={"recipe": recipe, "rank": 64, "full": True},
        finished_at="2026-12-07T00:00:00+00:00",
    )
    entry = manifest_entry(run, "x-lora.gguf")
    other = "grounded-v1" if recipe == "reference-v2" else "reference-v2"
    assert recipe in entry["intended_use"] and other not in entry["intended_use"]
    assert entry["recipe"] == recipe
