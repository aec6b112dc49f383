"""Model manifest: shipped entries, user overlay, hash verification, missing models."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from noteward.core.errors import ModelError
from noteward.llm import manifest as mf
from noteward.settings import user_data_dir

REQUIRED = {
    "id",
    "source",
    "sha256",
    "size",
    "quantization",
    "context_length",
    "chat_template",
    "licence",
    "intended_use",
}


def _overlay(entries: list[dict], default: str | None = None) -> Path:
    path = user_data_dir() / "models" / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict = {"schema_version": 1, "models": entries}
    if default:
        data["default"] = default
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _file(tmp_path: Path, name: str, content: bytes) -> tuple[Path, str]:
    p = tmp_path / name
    p.write_bytes(content)
    return p, hashlib.sha256(content).hexdigest()


def test_shipped_manifest_lists_both_base_models_with_required_fields() -> None:
    m = mf.load_manifest()
    assert {"smollm2-135m-instruct-q4_1", "gemma3-270m-q4_k_m"} <= set(m.entries)
    for entry in m.entries.values():
        assert REQUIRED <= set(entry.raw), entry.id
        assert len(entry.raw["sha256"]) == 64
    # the fine-tuned adapter is the default (it passed `noteward eval finetune`'s bar)
    assert m.default == "smollm2-135m-clinical"
    assert m.get(m.default).raw["base"] == "smollm2-135m-instruct-q4_1"


def test_real_smollm_file_verifies() -> None:
    r = mf.resolve_model("smollm2-135m-instruct-q4_1")
    assert r.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert r.sha256 == mf.load_manifest().get(r.id).raw["sha256"]
    cache = json.loads((user_data_dir() / "models" / "verified.json").read_text())
    assert str(r.path.resolve()) in cache


def test_overlay_adds_a_model_and_sets_default(tmp_path: Path) -> None:
    path, sha = _file(tmp_path, "tiny.gguf", b"not really a gguf")
    _overlay(
        [
            {
                "id": "site-model",
                "source": {"kind": "path", "path": str(path)},
                "sha256": sha,
                "size": path.stat().st_size,
            }
        ],
        default="site-model",
    )
    m = mf.load_manifest()
    assert m.default == "site-model"
    assert "smollm2-135m-instruct-q4_1" in m.entries  # shipped entries stay
    assert mf.resolve_model(None, m).path == path


def test_bad_hash_is_refused(tmp_path: Path) -> None:
    path, _ = _file(tmp_path, "bad.gguf", b"tampered weights")
    _overlay([{"id": "bad", "source": {"kind": "path", "path": str(path)}, "sha256": "0" * 64}])
    with pytest.raises(ModelError, match="sha256") as exc:
        mf.resolve_model("bad")
    assert exc.value.exit_code == 5


def test_wrong_size_is_refused_before_hashing(tmp_path: Path) -> None:
    path, sha = _file(tmp_path, "short.gguf", b"abc")
    _overlay(
        [{"id": "short", "source": {"kind": "path", "path": str(path)}, "sha256": sha, "size": 999}]
    )
    with pytest.raises(ModelError, match="bytes"):
        mf.resolve_model("short")


def test_missing_package_names_the_package() -> None:
    _overlay(
        [
            {
                "id": "ghost",
                "source": {
                    "kind": "package",
                    "package": "noteward-ghost-weights",
                    "module": "noteward_ghost_weights_xyz",
                    "file": "x.gguf",
                },
                "sha256": "1" * 64,
            }
        ]
    )
    with pytest.raises(ModelError, match="pip install noteward-ghost-weights") as exc:
        mf.resolve_model("ghost")
    assert exc.value.exit_code == 5


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    _overlay(
        [
            {
                "id": "gone",
                "source": {"kind": "path", "path": str(tmp_path / "nope.gguf")},
                "sha256": "1" * 64,
            }
        ]
    )
    with pytest.raises(ModelError, match="not found"):
        mf.resolve_model("gone")


def test_unknown_model_id_lists_known_ones() -> None:
    with pytest.raises(ModelError, match="smollm2-135m-instruct-q4_1"):
        mf.resolve_model("no-such-model")


def test_hash_cache_is_keyed_by_size_and_mtime(tmp_path: Path) -> None:
    path, sha = _file(tmp_path, "w.gguf", b"weights-v1")
    _overlay([{"id": "w", "source": {"kind": "path", "path": str(path)}, "sha256": sha}])
    mf.resolve_model("w")
    st = path.stat()
    path.write_bytes(b"weights-v2")  # same size, different bytes
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    mf.resolve_model("w")  # cached verdict: same path, size and mtime
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelError, match="sha256"):
        mf.resolve_model("w")


def test_adapter_entry_names_base_and_verifies_adapter(tmp_path: Path) -> None:
    adapter, sha = _file(tmp_path, "lora.gguf", b"adapter bytes")
    _overlay(
        [
            {
                "id": "smollm2-ft",
                "base": "smollm2-135m-instruct-q4_1",
                "adapter": {"path": str(adapter), "sha256": sha, "size": adapter.stat().st_size},
            }
        ],
        default="smollm2-ft",
    )
    r = mf.resolve_model()
    assert r.id == "smollm2-ft"
    assert r.adapter_path == adapter
    assert r.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert r.sha256 == sha and r.prompt_style == "chat"
    adapter.write_bytes(b"adapter bytez")
    os.utime(adapter, ns=(0, 10**9))
    with pytest.raises(ModelError, match="sha256"):
        mf.resolve_model()
