"""An adapter folded into its base (noteward.llm.merge): deterministic bytes, pinned and
checked, rebuilt when damaged, and the adapter still used when the merged file cannot be had.
(The pipeline test checks that the merged weights compute what base + adapter computes.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from noteward.core.errors import ModelError
from noteward.llm import manifest as mf
from noteward.llm.merge import merge_lora

ADAPTER_MODEL = "smollm2-135m-clinical"  # the shipped adapter entry


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOTEWARD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A merge of the shipped adapter made once, elsewhere: its hash is the pin."""
    entry = mf.load_manifest().get(ADAPTER_MODEL)
    adapter = entry.adapter_file()
    assert adapter is not None
    out = merge_lora(entry.model_file().path, adapter.path, tmp_path_factory.mktemp("m") / "x.gguf")
    return {"type": "Q8_0", "sha256": mf.sha256_file(out), "size": out.stat().st_size}


def _entry(merge: dict[str, object]) -> mf.ModelEntry:
    shipped = mf.load_manifest().get(ADAPTER_MODEL)
    return mf.ModelEntry(ADAPTER_MODEL, {**shipped.raw, "merge": merge}, shipped.origin, shipped.base)


def test_merged_weights_are_built_once_and_match_the_pin(cache: Path, pinned: dict[str, object]) -> None:
    entry = _entry(pinned)
    path = mf.merged_weights(entry)
    # a second, independent merge gave the same bytes: the file can be pinned by hash
    assert path is not None and mf.sha256_file(path) == pinned["sha256"]
    assert path.parent == cache / "models" / "merged"
    assert 0.6 * entry.model_file().size < path.stat().st_size  # type: ignore[operator]
    mtime = path.stat().st_mtime_ns
    assert mf.merged_weights(entry) == path and path.stat().st_mtime_ns == mtime  # reused


def test_resolve_runs_the_merged_file_and_keeps_the_adapter_hash(
    cache: Path, pinned: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = mf.load_manifest()
    entries = {**shipped.entries, ADAPTER_MODEL: _entry(pinned)}
    manifest = mf.Manifest(default=shipped.default, entries=entries)
    r = mf.resolve_model(ADAPTER_MODEL, manifest)
    assert r.merged and r.adapter_path is None and r.path.parent == cache / "models" / "merged"
    assert r.sha256 == shipped.get(ADAPTER_MODEL).raw["adapter"]["sha256"]  # provenance
    # without a "merge" spec the adapter is applied at load time
    unmerged = mf.ModelEntry(
        ADAPTER_MODEL, {k: v for k, v in shipped.get(ADAPTER_MODEL).raw.items() if k != "merge"},
        shipped.get(ADAPTER_MODEL).origin, shipped.get(ADAPTER_MODEL).base,
    )
    plain = mf.resolve_model(ADAPTER_MODEL, mf.Manifest(shipped.default, {**shipped.entries, ADAPTER_MODEL: unmerged}))
    assert not plain.merged and plain.adapter_path is not None


def test_a_damaged_cached_file_is_rebuilt(
    cache: Path, pinned: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    entry = _entry(pinned)
    path = mf.merged_weights(entry)
    assert path is not None
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="noteward.llm.manifest"):
        again = mf.merged_weights(entry)
    assert again == path and mf.sha256_file(path) == pinned["sha256"]
    assert "rebuilding" in caplog.text


def test_a_wrong_pin_falls_back_to_the_adapter(
    cache: Path, pinned: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="noteward.llm.manifest"):
        assert mf.merged_weights(_entry({**pinned, "sha256": "0" * 64})) is None
    assert "applying the adapter at load time" in caplog.text
    assert not list((cache / "models" / "merged").glob("*"))  # nothing unchecked left behind


def test_merge_refuses_what_is_not_an_adapter(tmp_path: Path) -> None:
    base = mf.resolve_model("smollm2-135m-instruct-q4_1").path
    with pytest.raises(ModelError, match="not a GGUF LoRA adapter"):
        merge_lora(base, base, tmp_path / "x.gguf")
    assert not list(tmp_path.iterdir())


def test_a_clean_clone_runs_the_default_merged_and_pinned(cache: Path) -> None:
    """The shipped default has a pinned merge: the first resolve in an empty cache folder builds
    it, the file matches the manifest's hash, and the adapter's hash stays the provenance."""
    manifest = mf.load_manifest()
    entry = manifest.get()
    assert entry.id == ADAPTER_MODEL
    spec = entry.raw.get("merge")
    assert spec and spec["type"] == "Q8_0" and len(spec["sha256"]) == 64
    assert not (cache / "models" / "merged").exists()  # nothing built yet
    r = mf.resolve_model(None, manifest)
    assert r.merged and r.adapter_path is None
    assert r.path.parent == cache / "models" / "merged"
    assert mf.sha256_file(r.path) == spec["sha256"] and r.path.stat().st_size == spec["size"]
    assert r.sha256 == entry.raw["adapter"]["sha256"]  # summaries record the adapter's hash
