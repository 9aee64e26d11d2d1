"""`python -m rae_ml.export_model DIR`: export the local embedding model's ONNX graph into DIR.

Run where the `torch` extra is installed (the image's build stage): it loads
all-MiniLM-L6-v2 with torch, exports and checks the graph (cosine >= 0.9999 with torch) and
saves, beside it, the torch vectors it was checked against and the model's tokenizer. A service
whose EMBEDDING_ONNX_CACHE_DIR is DIR then loads it without torch, from a read-only directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rae_ml.adapters.onnx_embedder import OnnxEmbedder, exported_graphs
from rae_ml.adapters.sentence_transformer import (
    MINILM,
    TORCH_EXTRA_HINT,
    load_local_embedder,
    torch_installed,
)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rae_ml.export_model", description=__doc__)
    parser.add_argument("directory", type=Path, help="where the graph goes (created if missing)")
    args = parser.parse_args(argv)
    if not torch_installed():
        print(f"export_model: torch is not installed: {TORCH_EXTRA_HINT}", file=sys.stderr)  # noqa: T201
        return 1
    embedder = load_local_embedder(threads=2, cache_dir=args.directory)
    graphs = exported_graphs(MINILM.name, args.directory)
    # load_local_embedder falls back to torch when the export fails: here that is an error.
    if not isinstance(embedder, OnnxEmbedder) or not graphs:
        print(f"export_model: no usable ONNX graph was written to {args.directory}", file=sys.stderr)  # noqa: T201
        return 1
    print(f"export_model: {graphs[0]} ({graphs[0].stat().st_size // 1_000_000} MB)")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
