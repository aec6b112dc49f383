"""LoRA fine-tuning of a packaged GGUF model (CPU or CUDA GPU), with checkpoints and resume.

transformers de-quantizes the base GGUF (``gguf_file=``) into a float32 model, peft adds
LoRA matrices, and a small loop trains only those. The loop is ours rather than
``transformers.Trainer`` so that a wall-clock budget, exact resume (data order, optimizer,
and RNG state) and a progress callback stay simple on a shared 2-core machine.

Loss is computed on the assistant turn only (the grounded bullets and the end-of-turn
token); the prompt is wrapped exactly as ``noteward.llm.runtime`` wraps it at inference.

Encoding (``encode_all``) and the training loop (``train_encoded``) are separate so that a
prepared, tokenized training set can be trained on another machine with a GPU
(``noteward.training.job``), which needs only torch, transformers, peft and gguf: this
module imports nothing else of Noteward at load time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteward.core.errors import ModelError, UsageError

if TYPE_CHECKING:
    from noteward.training.data import Example
    from noteward.training.reference_data import ReferenceExample

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
STATE_FILE = "state.json"
STOP_FILE = "STOP"  # create it in the work folder to end a run cleanly at the next step


@dataclass
class TrainConfig:
    """Hyper-parameters and limits of one fine-tuning run (recorded in the model card)."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    learning_rate: float = 3e-4
    warmup_steps: int = 10
    micro_batch: int = 2
    grad_accum: int = 4
    max_seq_len: int = 768
    max_steps: int = 0  # optimizer steps; 0: one pass over the data
    time_budget_s: float = 0.0  # 0: no limit
    checkpoint_every: int = 10  # optimizer steps
    seed: int = 1234
    threads: int = 2
    prompt_style: str = "chat"
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when torch sees a GPU)
    verified_targets: bool = False  # train only on reference sentences the aligner accepts
    stop_after: int = 0  # stop at this optimizer step, the schedule still planned for max_steps
    aci_window: int = 6  # ACI-Bench note sentences per training example
    aci_visit_prompts: int = 0  # whole-visit ACI-Bench examples per visit (product-shaped prompts)
    recipe: str = "grounded-v1"  # or "reference-v2" (noteward.training.reference_data)
    epochs: int = 0  # passes over the data when max_steps is 0 (0: one pass)
    full: bool = False  # train the linear layers' full weights (exported as a rank-``rank`` extraction)
    dev_max_new_tokens: int = 384  # generation cap when scoring the development split


@dataclass
class TrainResult:
    """What a run did: steps, examples seen, time, losses; written into the model card."""

    steps: int
    target_steps: int
    micro_batches: int
    examples_seen: int
    seconds: float
    first_loss: float | None
    last_loss: float | None
    stopped_by: str  # "max-steps" | "time-budget" | "data" | "stop-file" | "stop-after"
    losses: list[float] = field(default_factory=list)
    hardware: str = ""
    # token-weighted mean training loss of each finished epoch (the loss curve per epoch)
    epoch_losses: list[float] = field(default_factory=list)


def load_base(gguf_path: Path, threads: int = 2) -> tuple[Any, Any]:
    """The base GGUF as a float32 transformers model plus its tokenizer.

    A model loaded from a GGUF keeps a GGUF quantization config that makes peft and
    ``save_pretrained`` refuse it; the weights are already de-quantized, so both are dropped.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(max(1, threads))
    tok = load_tokenizer(gguf_path)  # also sets the offline switches for the weights below
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"transformers cannot load the base GGUF {gguf_path.name}: {exc}") from None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if getattr(model, "hf_quantizer", None) is not None:
        setattr(model, "hf_quantizer", None)  # noqa: B010 - torch's Module typing rejects plain assignment
    setattr(model, "is_quantized", False)  # noqa: B010
    return model, tok


def mask_unused_vocab(model: Any) -> int:
    """Keep tokens whose embedding row is all zeros out of the output softmax; how many.

    A base slimmed for carrying to a GPU (``noteward.training.carry.slim_gguf``) has the
    rows of tokens its data never uses zeroed; their logits would otherwise sit at 0 and
    take probability mass the full model never gave them. A packaged base has no zero row
    and is left as it is.
    """
    emb = model.get_input_embeddings().weight
    unused = (emb.detach() == 0).all(dim=1)
    n = int(unused.sum())
    if not n:
        return 0

    def hook(_module: Any, _inputs: Any, logits: Any) -> Any:
        return logits.masked_fill(unused.to(logits.device), float("-inf"))

    head = model.get_output_embeddings()
    if head is None:
        raise ModelError("the model has no output head to mask")
    head.register_forward_hook(hook)
    log.info("%d of %d tokens masked out of the output (zero embedding rows)", n, emb.shape[0])
    return n


def load_tokenizer(gguf_path: Path) -> Any:
    """The base GGUF's tokenizer alone (no weights), as ``load_base`` sets it up."""
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"transformers cannot load the tokenizer of {gguf_path.name}: {exc}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        # the pretrained Gemma 3 GGUF carries no template: train on the turns the runtime uses
        from noteward.llm.chat_template import fallback_template

        tok.chat_template = fallback_template(gguf_architecture(gguf_path))
    return tok


def gguf_architecture(gguf_path: Path) -> str:
    """``general.architecture`` of a GGUF file (``llama``, ``gemma3``), read from its header."""
    import gguf

    field = gguf.GGUFReader(gguf_path).fields.get("general.architecture")
    return str(field.contents()) if field is not None else ""


def end_of_turn(tok: Any, prompt_style: str) -> str:
    """The text that closes the assistant turn (what makes generation stop)."""
    if prompt_style == "chat":
        probe = tok.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": "QZXJ7"}], tokenize=False
        )
        tail = str(probe).split("QZXJ7", 1)[-1]
        return tail if tail.strip() else (tok.eos_token or "")
    return tok.eos_token or ""


def render(ex: Example | ReferenceExample, tok: Any, prompt_style: str) -> tuple[str, str]:
    """(prompt text, target text) exactly as the runtime sends the prompt.

    The target ends with the chat template's end-of-turn text (``<|im_end|>`` for SmolLM2,
    ``<end_of_turn>`` for Gemma), so the loss teaches the model to stop there.
    """
    if prompt_style == "chat" or not hasattr(ex, "sentences"):
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": ex.prompt()}], tokenize=False, add_generation_prompt=True
        )
    else:
        from noteward.llm import prompts

        prompt = prompts.build_base_prompt(ex.sentences)
    return str(prompt), ex.target() + end_of_turn(tok, prompt_style)


def encode(ex: Example | ReferenceExample, tok: Any, cfg: TrainConfig) -> tuple[list[int], list[int]] | None:
    """Token ids and labels (prompt masked with -100); None when it exceeds max_seq_len."""
    prompt, target = render(ex, tok, cfg.prompt_style)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    if tok.bos_token_id is not None and getattr(tok, "add_bos_token", False):
        p_ids = [tok.bos_token_id] + p_ids
    t_ids = tok(target, add_special_tokens=False)["input_ids"]
    ids = p_ids + t_ids
    if len(ids) > cfg.max_seq_len:
        return None
    return ids, [-100] * len(p_ids) + t_ids


def add_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap the model with trainable LoRA matrices (everything else frozen)."""
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lcfg)


def lora_state(model: Any) -> dict[str, Any]:
    """The trained tensors only, on the CPU (what a checkpoint holds).

    LoRA: the A/B matrices. Full fine-tune: the weights of the linear layers it trains.
    """
    sd = model.state_dict()
    chosen = {k: v for k, v in sd.items() if "lora_" in k} or {k: v for k, v in sd.items() if _is_trained_linear(k)}
    return {k: v.detach().to("cpu", copy=True) for k, v in chosen.items()}


def _is_trained_linear(key: str) -> bool:
    return key.endswith(".weight") and any(f".{m}." in key for m in _FULL_MODULES)


_FULL_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_trainable(model: Any, cfg: TrainConfig) -> Any:
    """LoRA matrices on ``cfg.target_modules`` or, with ``cfg.full``, the linear layers themselves.

    A full fine-tune trains only the attention and MLP projections (embeddings and norms
    stay frozen) so that its whole update is what the low-rank extraction carries.
    """
    if not cfg.full:
        return add_lora(model, cfg)
    for name, p in model.named_parameters():
        p.requires_grad = _is_trained_linear(name) and any(f".{m}." in name for m in cfg.target_modules)
    return model


def encode_all(examples: list[Example] | list[ReferenceExample], tok: Any, cfg: TrainConfig) -> list[tuple[list[int], list[int]]]:
    """Every example that fits ``cfg.max_seq_len``, tokenized (ids, labels)."""
    return [e for e in (encode(ex, tok, cfg) for ex in examples) if e is not None]


def resolve_device(name: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` -> the torch device to train on (clear error if absent)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu.")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"Unknown device {name!r}; choose cpu, cuda or auto.")
    return name


def hardware(device: str, threads: int) -> str:
    """What the run trained on, in words (for the model card)."""
    import torch

    if device == "cuda":
        return f"GPU ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, bf16 autocast)"
    return f"CPU ({threads} threads); no GPU"


def _batch(items: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    n = max(len(i) for i, _ in items)
    ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    labels = torch.full((len(items), n), -100, dtype=torch.long)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    for r, (i, lab) in enumerate(items):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(lab)] = torch.tensor(lab)
        mask[r, : len(i)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def train(
    model: Any,
    tok: Any,
    examples: list[Example],
    cfg: TrainConfig,
    workdir: Path,
    *,
    resume: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    show_bar: bool = True,
    on_epoch: Callable[[Any, dict[str, Any]], None] | None = None,
) -> tuple[Any, TrainResult]:
    """LoRA-train ``model`` on ``examples``; checkpoints go to ``workdir``.

    Stops at ``cfg.max_steps`` optimizer steps, at the end of the wall-clock budget, when
    the data runs out (one pass when max_steps is 0), or when a ``STOP`` file appears in
    ``workdir`` (the checkpoint is saved first in every case). With ``resume`` it continues from the
    last checkpoint in ``workdir`` with the same data order and optimizer state.
    """
    encoded = encode_all(examples, tok, cfg)  # train_encoded refuses an empty set
    skipped = len(examples) - len(encoded)
    if skipped:
        log.info("%d examples longer than %d tokens were skipped", skipped, cfg.max_seq_len)
    return train_encoded(
        model, encoded, tok.pad_token_id, cfg, workdir, resume=resume, progress=progress, show_bar=show_bar,
        on_epoch=on_epoch,
    )


def train_encoded(
    model: Any,
    encoded: list[tuple[list[int], list[int]]],
    pad_id: int,
    cfg: TrainConfig,
    workdir: Path,
    *,
    resume: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    show_bar: bool = True,
    on_step: Callable[[Any, dict[str, Any]], None] | None = None,
    on_epoch: Callable[[Any, dict[str, Any]], None] | None = None,
) -> tuple[Any, TrainResult]:
    """The training loop of ``train`` over already tokenized examples (see ``train``).

    ``on_step(model, state)`` runs after every optimizer step with the checkpoint's fields
    (step, seen, seconds, losses, ...), e.g. to keep snapshots of the LoRA weights.
    A checkpoint without optimizer state (a weights-only snapshot) resumes with a fresh
    optimizer. ``on_epoch(model, state)`` runs when an optimizer step finishes a pass over
    the data (``state["epoch"]`` counts finished epochs from 1), e.g. to score the
    development split; the model is in train mode on the training device.
    """
    import contextlib

    import torch

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    workdir.mkdir(parents=True, exist_ok=True)
    if not encoded:
        raise UsageError("No training example fits the sequence length; raise --max-seq-len or add data.")
    device = resolve_device(cfg.device)
    per_step = cfg.micro_batch * cfg.grad_accum
    epochs = max(1, cfg.epochs)
    target_steps = cfg.max_steps or epochs * max(1, math.ceil(len(encoded) / per_step))

    model = make_trainable(model, cfg)
    model.to(device)
    model.train()

    def autocast() -> Any:
        if device == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)

    def lr_scale(step: int, elapsed: float) -> float:
        # Warm-up, then cosine decay over whichever runs out first: steps or the time budget,
        # so a run cut short by --time-budget still ends at a low learning rate.
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, target_steps - cfg.warmup_steps)
        if cfg.time_budget_s:
            frac = max(frac, elapsed / cfg.time_budget_s)
        return max(0.05, 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    step, cursor, epoch, seen, seconds_before = 0, 0, 0, 0, 0.0
    losses: list[float] = []
    epoch_losses: list[float] = []
    epoch_sum, epoch_tokens = 0.0, 0
    ckpt = workdir / CHECKPOINT_FILE
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["lora"], strict=False)  # copies onto the model's device
        if state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])
        step, cursor, epoch = state["step"], state["cursor"], state["epoch"]
        seen, seconds_before, losses = state["seen"], state["seconds"], state["losses"]
        epoch_losses = list(state.get("epoch_losses", []))
        epoch_sum, epoch_tokens = state.get("epoch_sum", 0.0), state.get("epoch_tokens", 0)
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed at step %d (examples seen %d)", step, seen)
    elif resume:
        log.info("no checkpoint in the work folder; starting from step 0")

    def order(ep: int) -> list[int]:
        idx = list(range(len(encoded)))
        random.Random(cfg.seed + ep).shuffle(idx)
        return idx

    perm = order(epoch)
    hw = hardware(device, cfg.threads)
    if resume and ckpt.exists():
        hw = state.get("hardware") or hw  # the machine that did the training steps
    started = time.monotonic()
    first_loss = losses[0] if losses else None
    stopped_by = "max-steps"

    def fields_now() -> dict[str, Any]:
        return {
            "step": step,
            "cursor": cursor,
            "epoch": epoch,
            "seen": seen,
            "seconds": seconds_before + time.monotonic() - started,
            "losses": list(losses),
            "epoch_losses": list(epoch_losses),
            "epoch_sum": epoch_sum,
            "epoch_tokens": epoch_tokens,
            "torch_rng": torch.get_rng_state(),
            "config": asdict(cfg),
            "hardware": hw,
        }

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"lora": lora_state(model), "optimizer": opt.state_dict(), **fields_now()}, tmp)
        os.replace(tmp, ckpt)
        (workdir / STATE_FILE).write_text(
            json.dumps({"step": step, "target_steps": target_steps, "seen": seen, "loss": losses[-1] if losses else None}),
            encoding="utf-8",
        )

    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=target_steps, initial=step, unit="step", desc="fine-tuning", dynamic_ncols=True)
    micro = 0
    budget = cfg.time_budget_s
    try:
        while step < target_steps:
            if cfg.stop_after and step >= cfg.stop_after:
                stopped_by = "stop-after"
                break
            if budget and seconds_before + time.monotonic() - started >= budget:
                stopped_by = "time-budget"
                break
            if (workdir / STOP_FILE).exists():
                (workdir / STOP_FILE).unlink()
                stopped_by = "stop-file"
                break
            if cursor >= len(perm):
                if not cfg.max_steps and epoch + 1 >= epochs:
                    stopped_by = "data"
                    break
                epoch, cursor = epoch + 1, 0
                perm = order(epoch)
            acc_loss, acc_tokens = 0.0, 0
            lr = cfg.learning_rate * lr_scale(step, seconds_before + time.monotonic() - started)
            for group in opt.param_groups:
                group["lr"] = lr
            for _ in range(cfg.grad_accum):
                if cursor >= len(perm):
                    break
                items = [encoded[i] for i in perm[cursor : cursor + cfg.micro_batch]]
                cursor += len(items)
                batch = {k: v.to(device) for k, v in _batch(items, pad_id).items()}
                n_tok = int((batch["labels"] != -100).sum())
                with autocast():
                    out = model(**batch)
                (out.loss / cfg.grad_accum).backward()
                acc_loss += float(out.loss.detach()) * n_tok
                acc_tokens += n_tok
                seen += len(items)
                micro += 1
            if acc_tokens == 0:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            loss = acc_loss / acc_tokens
            losses.append(round(loss, 4))
            epoch_sum, epoch_tokens = epoch_sum + acc_loss, epoch_tokens + acc_tokens
            if cursor >= len(perm):  # this step finished an epoch
                epoch_losses.append(round(epoch_sum / epoch_tokens, 4))
                epoch_sum, epoch_tokens = 0.0, 0
                if on_epoch is not None:
                    on_epoch(model, {**fields_now(), "epoch": epoch + 1})
            if first_loss is None:
                first_loss = loss
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}")
            if progress is not None:
                progress(step, target_steps, loss)
            if step % cfg.checkpoint_every == 0:
                save()
            if on_step is not None:
                on_step(model, fields_now())
        save()
    finally:
        if bar is not None:
            bar.close()
    if device == "cuda":
        model.to("cpu")  # export and the caller work on the CPU
    result = TrainResult(
        hardware=hw,
        steps=step,
        target_steps=target_steps,
        micro_batches=micro,
        examples_seen=seen,
        seconds=round(seconds_before + time.monotonic() - started, 1),
        first_loss=round(first_loss, 4) if first_loss is not None else None,
        last_loss=losses[-1] if losses else None,
        stopped_by=stopped_by,
        losses=losses,
        epoch_losses=epoch_losses,
    )
    return model, result
