"""The ONNX Runtime backend of the local model against the torch one, with the real model files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rae_ml.adapters.onnx_embedder import OnnxEmbedder, load_verified_from_cache, onnx_file_name
from rae_ml.adapters.sentence_transformer import (
    MINILM,
    SentenceTransformerEmbedder,
    default_model_path,
    load_local_embedder,
)
from rae_ml.domain.embeddings import Embedder
from rae_ml.main import MLSettings, default_models

LONG = (
    "The quarterly review covered the Falcon budget, the hiring plan for the Berlin office, "
    "the migration of the billing service and the incident in March. "
)
TEXTS = [
    "hi",
    "a",
    "Tea?",
    "ok ok ok",
    "Alice prefers green tea in the morning.",
    "Bob drinks coffee after lunch.",
    "The invoice is due on Friday.",
    "A cat is sleeping on the sofa.",
    "A kitten naps on the couch.",
    "Quarterly revenue grew by ten percent.",
    "What did Priya decide about project Orion?",
    "Marco moved to Lisbon in 2023 and works for Acme Corp as a data engineer.",
    "The meeting moved to Tuesday at 10:30 because the design review ran late.",
    "Remember: the staging database password rotates every 30 days.",
    "Hana's daughter starts school in September; she needs a new backpack.",
    "Lena dislikes long meetings and prefers written updates.",
    "Omar leads the platform team and reports to the CTO.",
    "The launch was postponed twice, first for legal review, then for load testing.",
    LONG * 10,
    "Different opening. " + LONG * 12,
    ("word " * 400).strip(),
    "Zürich, São Paulo, Kraków and Malmö",
    "東京で会議があります。明日は雨です。",
    "Москва — столица России.",
    "مرحبا بالعالم",
    "Emoji only a bit: ☕🚀✨ and done",
    "e\u0301te\u0301 (combining accents)",
    "!!!",
    "...",
    "?!",
    "— – -",
    "(*&^%$#@!)",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\ninside",
    "3.14159 2.71828 1.41421",
    "2025-03-04T10:00:00Z",
    "def square(x):\n    return x ** 2",
    "SELECT id, name FROM users WHERE tenant_id = $1;",
    "https://example.org/path?query=1&other=2",
    "alice@example.org wrote to bob@example.org",
    "UPPERCASE SHOUTING ABOUT THE DEADLINE",
    "lowercase whisper about the deadline",
    "Alice prefers green tea in the morning.",
    "hi",
    "The same sentence twice. The same sentence twice.",
    "A very short one.",
    "Numbers 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
    "Mixed Deutsch and English: das Meeting ist morgen",
    "Le café est prêt, la réunion commence.",
    "The end.",
]


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    """The torch backend, built the way the service builds it from its settings."""
    return default_models(MLSettings(embedding_backend="torch")).build(MINILM.name)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "onnx"


def cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    return (np.array(a) * np.array(b)).sum(axis=1)


def test_the_default_loader_runs_onnx_and_the_torch_backend_stays_available(
    local_embedder: Embedder, torch_embedder: Embedder
) -> None:
    assert isinstance(local_embedder, OnnxEmbedder)
    assert isinstance(torch_embedder, SentenceTransformerEmbedder)
    assert (local_embedder.name, local_embedder.dimensions, local_embedder.max_tokens) == (
        "all-MiniLM-L6-v2",
        384,
        256,
    )
    vectors = np.array(torch_embedder.encode(["torch still answers"]))
    assert vectors.shape == (1, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_vectors_match_torch_in_the_callers_order(local_embedder: Embedder, torch_embedder: Embedder) -> None:
    expected = torch_embedder.encode(TEXTS)

    batched = local_embedder.encode(TEXTS)

    assert len(batched) == len(TEXTS)
    assert np.allclose(np.linalg.norm(np.array(batched), axis=1), 1.0, atol=1e-5)
    assert cosines(batched, expected).min() >= 0.9999
    # Each text is nearest to its own torch vector, apart from the duplicates (equal vectors).
    nearest = (np.array(batched) @ np.array(expected).T).argmax(axis=1)
    assert [TEXTS[i] for i in nearest] == TEXTS


def test_a_few_texts_at_a_time_match_torch_too(local_embedder: Embedder, torch_embedder: Embedder) -> None:
    expected = torch_embedder.encode(TEXTS)

    one_by_one = [local_embedder.encode([text])[0] for text in TEXTS]
    in_fours = [
        v for start in range(0, len(TEXTS), 4) for v in local_embedder.encode(TEXTS[start : start + 4])
    ]

    assert cosines(one_by_one, expected).min() >= 0.9999
    assert cosines(in_fours, expected).min() >= 0.9999


def test_texts_longer_than_the_model_reads_are_truncated_like_torch(
    local_embedder: Embedder, torch_embedder: Embedder
) -> None:
    long = LONG * 10
    assert local_embedder.count_tokens([long]) == [256]
    beyond = [long, long + " Completely different words after the cut: volcano, saxophone."]

    vectors = local_embedder.encode(beyond)

    assert cosines(vectors[:1], vectors[1:])[0] >= 0.9999
    assert cosines(vectors, torch_embedder.encode(beyond)).min() >= 0.9999


def test_token_counts_equal_the_torch_embedders(local_embedder: Embedder, torch_embedder: Embedder) -> None:
    assert local_embedder.count_tokens(TEXTS) == torch_embedder.count_tokens(TEXTS)


def test_the_graph_is_exported_once_and_reused(cache_dir: Path, torch_embedder: Embedder) -> None:
    first = default_models(MLSettings(embedding_onnx_cache_dir=str(cache_dir))).build(MINILM.name)
    assert isinstance(first, OnnxEmbedder)
    # The graph, the torch vectors it was checked against and the tokenizer (what a start without
    # torch needs); no temporary file left beside them.
    exported = cache_dir / onnx_file_name(default_model_path())
    saved = [exported, exported.with_suffix(".reference.json"), exported.with_suffix(".tokenizer.json")]
    assert sorted(cache_dir.iterdir()) == sorted(saved)
    written = exported.stat()

    second = load_local_embedder(threads=2, cache_dir=cache_dir)

    assert isinstance(second, OnnxEmbedder)
    assert sorted(cache_dir.iterdir()) == sorted(saved)
    again = exported.stat()
    assert (again.st_ino, again.st_mtime_ns, again.st_size) == (
        written.st_ino,
        written.st_mtime_ns,
        written.st_size,
    )
    assert cosines(second.encode(TEXTS[:8]), torch_embedder.encode(TEXTS[:8])).min() >= 0.9999


def test_a_corrupt_cached_file_is_exported_again(
    cache_dir: Path, torch_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir.mkdir()
    target = cache_dir / onnx_file_name(default_model_path())
    target.write_bytes(b"\x08\x07 not a protobuf, cut short by a full disk")

    with caplog.at_level(logging.WARNING, logger="rae.ml.embeddings"):
        embedder = load_local_embedder(threads=2, cache_dir=cache_dir)

    assert isinstance(embedder, OnnxEmbedder)
    assert "is unusable, exporting it again" in caplog.text
    assert target.stat().st_size > 10_000_000
    assert cosines(embedder.encode(TEXTS), torch_embedder.encode(TEXTS)).min() >= 0.9999


def test_a_cached_graph_that_answers_other_vectors_is_exported_again(
    cache_dir: Path, torch_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir.mkdir()
    target = cache_dir / onnx_file_name(default_model_path())
    onnx.save(wrong_graph(), str(target))

    with caplog.at_level(logging.WARNING, logger="rae.ml.embeddings"):
        embedder = load_local_embedder(threads=2, cache_dir=cache_dir)

    assert isinstance(embedder, OnnxEmbedder)
    assert "with the torch model, below 0.9999" in caplog.text
    assert cosines(embedder.encode(TEXTS), torch_embedder.encode(TEXTS)).min() >= 0.9999


def test_an_unusable_cache_directory_falls_back_to_torch(
    tmp_path: Path, torch_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    with caplog.at_level(logging.WARNING, logger="rae.ml.embeddings"):
        embedder = load_local_embedder(threads=2, cache_dir=blocker / "onnx")

    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert "runs on torch" in caplog.text
    assert embedder.encode(["still answered"]) == torch_embedder.encode(["still answered"])


def test_the_backend_and_cache_settings_have_their_documented_defaults() -> None:
    defaults = MLSettings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.embedding_backend == "onnx"
    assert defaults.embedding_onnx_cache_dir is None
    with pytest.raises(ValueError, match="embedding_backend"):
        MLSettings(embedding_backend="tensorflow")  # type: ignore[arg-type]


def wrong_graph() -> onnx.ModelProto:
    """A valid graph with the model's inputs and output that ignores what the text says: every
    component of every vector is equal."""
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", 384])
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids", "last_axis"], ["column"]),
        helper.make_node("Expand", ["column", "shape"], ["last_hidden_state"]),
    ]
    constants = [
        helper.make_tensor("last_axis", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [1, 1, 384]),
    ]
    graph = helper.make_graph(nodes, "wrong", inputs, [output], initializer=constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_restart_loads_the_verified_graph_without_torch(cache_dir: Path, torch_embedder: Embedder) -> None:
    load_local_embedder(threads=2, cache_dir=cache_dir)  # exports, checks against torch, keeps the proof

    restarted = load_verified_from_cache(MINILM.name, default_model_path(), threads=2, cache_dir=cache_dir)

    assert isinstance(restarted, OnnxEmbedder)
    assert cosines(restarted.encode(TEXTS), torch_embedder.encode(TEXTS)).min() >= 0.9999
    assert restarted.count_tokens(TEXTS) == torch_embedder.count_tokens(TEXTS)
    # In a fresh process, the default loader does not import torch at all.
    probe = (
        "import sys; from pathlib import Path\n"
        "from rae_ml.adapters.sentence_transformer import load_local_embedder\n"
        f"e = load_local_embedder(threads=1, cache_dir=Path({str(cache_dir)!r}))\n"
        "assert type(e).__name__ == 'OnnxEmbedder', type(e)\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)


def test_a_stored_reference_that_disagrees_sends_the_start_through_torch(
    cache_dir: Path, torch_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    load_local_embedder(threads=2, cache_dir=cache_dir)
    reference = (cache_dir / onnx_file_name(default_model_path())).with_suffix(".reference.json")
    stored = json.loads(reference.read_text())
    reference.write_text(json.dumps({**stored, "probes": [[-x for x in v] for v in stored["probes"]]}))

    with caplog.at_level(logging.WARNING, logger="rae.ml.embeddings"):
        assert (
            load_verified_from_cache(MINILM.name, default_model_path(), threads=2, cache_dir=cache_dir)
            is None
        )
        embedder = load_local_embedder(threads=2, cache_dir=cache_dir)

    assert "cannot start without torch" in caplog.text
    assert isinstance(embedder, OnnxEmbedder)
    assert cosines(embedder.encode(TEXTS), torch_embedder.encode(TEXTS)).min() >= 0.9999
    assert json.loads(reference.read_text())["probes"] == stored["probes"]  # written again by torch
