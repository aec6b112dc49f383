"""Write a peft LoRA adapter as a GGUF LoRA that llama.cpp applies to the packaged base.

This is the small part of llama.cpp's ``convert_lora_to_gguf.py`` that Llama-family and
Gemma 3 adapters need, written with the ``gguf`` package so the project carries no llama.cpp code:

- tensor names follow llama.cpp (``blk.N.attn_q.weight.lora_a`` / ``.lora_b``); Llama and
  Gemma 3 name their seven projections alike;
- llama.cpp stores a Llama's Q and K with rows permuted for its RoPE layout (transformers
  un-permutes them when it reads a GGUF), so the B matrix of a Q or K adapter gets the same
  permutation. Gemma's converter does not permute (transformers reads Gemma 3's Q and K as
  stored), so its B matrices are written as they are;
- Gemma 3 stores its RMS norms as ``1 + weight`` and ties the output head to the token
  embedding; neither is touched here: only linear layers are adapted (a full fine-tune
  trains only them, see ``trainer.make_trainable``), so the base's norms and embedding stand;
- metadata ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``, and
  ``general.architecture`` the base's (``llama`` or ``gemma3``): llama.cpp refuses an
  adapter whose architecture differs from the model's.

The result is checked in the tests by comparing llama.cpp's logits with the adapter
against the peft model's logits on the same tokens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from noteward.core.errors import ModelError

# transformers module name -> llama.cpp tensor name (Llama-family models).
_LLAMA_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"layers\.(\d+)\.(.+?)\.lora_([AB])\.(?:default\.)?weight$")
# transformers ``config.model_type`` -> (GGUF architecture, Q/K rows permuted by llama.cpp's converter)
_ARCHS = {"llama": ("llama", True), "gemma3_text": ("gemma3", False), "gemma3": ("gemma3", False)}
SUPPORTED_ARCHS = ("llama", "gemma3")


def gguf_arch(config: Any) -> str:
    """The GGUF architecture of a transformers config (``llama``, ``gemma3``); ModelError otherwise."""
    model_type = str(getattr(config, "model_type", ""))
    if model_type not in _ARCHS:
        raise ModelError(
            f"GGUF adapter export supports {', '.join(SUPPORTED_ARCHS)} models, not {model_type!r}; "
            "fine-tune smollm2-135m-instruct-q4_1 or gemma3-270m-q4_k_m."
        )
    return _ARCHS[model_type][0]


def _permute(w: Any, n_head: int) -> Any:
    """llama.cpp's Q/K row order (see convert_hf_to_gguf.LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def export_lora_gguf(
    lora: dict[str, Any], config: Any, alpha: float, out: Path, *, name: str = "", f16: bool = True
) -> Path:
    """Write the LoRA tensors ``lora`` (peft state dict) as a GGUF adapter at ``out``."""
    import gguf
    import numpy as np

    arch = gguf_arch(config)
    permute_qk = _ARCHS[str(config.model_type)][1]
    n_head = int(config.num_attention_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_head)
    pairs: dict[tuple[int, str], dict[str, Any]] = {}
    for key, tensor in lora.items():
        m = _KEY.search(key)
        if not m:
            raise ModelError(f"Unexpected tensor in the LoRA adapter: {key}.")
        layer, module, ab = int(m.group(1)), m.group(2), m.group(3)
        if module not in _LLAMA_NAMES:
            raise ModelError(f"LoRA on {module} cannot be exported to GGUF; target attention/MLP projections only.")
        pairs.setdefault((layer, module), {})[ab] = tensor.detach().float().cpu().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    dtype = np.float16 if f16 else np.float32
    for (layer, module), ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise ModelError(f"LoRA adapter for layer {layer} {module} lacks its A or B matrix.")
        a, b = ab["A"], ab["B"]
        if permute_qk and module == "self_attn.q_proj":
            b = _permute(b, n_head)
        elif permute_qk and module == "self_attn.k_proj":
            b = _permute(b, n_kv)
        base = f"blk.{layer}.{_LLAMA_NAMES[module]}.weight"
        writer.add_tensor(base + ".lora_a", np.ascontiguousarray(a).astype(dtype))
        writer.add_tensor(base + ".lora_b", np.ascontiguousarray(b).astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out


def peft_state_for_export(model: Any) -> dict[str, Any]:
    """LoRA A/B tensors from a peft model, keyed as peft saves them."""
    return {k: v for k, v in model.state_dict().items() if ".lora_A." in k or ".lora_B." in k}


def _peft_stem(key: str) -> str:
    """The peft module name of a linear layer's weight key ("...q_proj.weight")."""
    stem = key[: -len(".weight")]
    return stem if stem.startswith("base_model.model.") else f"base_model.model.{stem}"


def lora_from_delta(base: dict[str, Any], tuned: dict[str, Any], rank: int) -> dict[str, Any]:
    """A rank-``rank`` LoRA (peft keys, scale alpha/r = 1) carrying ``tuned - base`` per linear layer.

    How a full fine-tune ships as an adapter: each weight update is cut to its ``rank``
    largest singular directions (B = U S, A = V^T), computed in float64. Export it with
    ``alpha = rank``; ``delta_kept`` reports how much of the update survives.
    """
    import torch

    out: dict[str, Any] = {}
    for key, w in tuned.items():
        if key not in base or not key.endswith(".weight"):
            continue
        delta = w.detach().to("cpu", torch.float64) - base[key].detach().to("cpu", torch.float64)
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, s.shape[0])
        stem = _peft_stem(key)
        out[f"{stem}.lora_A.weight"] = vh[:r].to(torch.float32)
        out[f"{stem}.lora_B.weight"] = (u[:, :r] * s[:r]).to(torch.float32)
    return out


def merge_extraction(base: dict[str, Any], lora: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the extracted LoRA (``lora_from_delta``, scale 1) added back: the weights
    the shipped adapter gives, in the base's dtype, for the keys the LoRA covers.

    The development split is scored on these as well as on the fine-tune itself, so that the
    epoch (and base) is chosen on what ships rather than on the full-rank float update.
    """
    import torch

    out: dict[str, Any] = {}
    for key, w in base.items():
        stem = _peft_stem(key)
        a, b = lora.get(f"{stem}.lora_A.weight"), lora.get(f"{stem}.lora_B.weight")
        if a is None or b is None:
            continue
        delta = b.to("cpu", torch.float64) @ a.to("cpu", torch.float64)
        out[key] = (w.detach().to("cpu", torch.float64) + delta).to(w.dtype)
    return out


def delta_kept(base: dict[str, Any], tuned: dict[str, Any], lora: dict[str, Any]) -> float:
    """Share of the full update's squared norm that the extracted LoRA carries (0..1)."""

    kept = total = 0.0
    for key, w in tuned.items():
        if key not in base:
            continue
        stem = _peft_stem(key)
        delta = w.double() - base[key].double()
        approx = lora[f"{stem}.lora_B.weight"].double() @ lora[f"{stem}.lora_A.weight"].double()
        total += float((delta**2).sum())
        kept += float((delta**2).sum()) - float(((delta - approx) ** 2).sum())
    return kept / total if total else 1.0
