"""The local embedding model run by ONNX Runtime instead of torch.

Same vectors as sentence-transformers (cosine ≥ 0.9999, checked at every load), in less time
on the CPU: on a 2-core VM one short query took 8.5 ms (p50) vs 20-22 ms with torch, and
batches ran ~145 vs ~110 sentences/s. The graph is exported from the loaded SentenceTransformer
once and cached on disk under a key of the model files and the exporting library versions, so a
restart only loads it. int8 quantisation was measured and rejected (cosine 0.975: worse
retrieval).

`rae_ml.adapters.sentence_transformer.load_local_embedder` decides between this and torch, and
falls back to torch whenever anything here fails. Where torch is not installed (the ml image),
`load_exported` loads a graph exported earlier (at the image's build) with the tokenizer and the
torch vectors saved beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from rae_ml.adapters.sentence_transformer import SMALL_BATCH, LocalEmbedder
from rae_ml.domain.embeddings import Embedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "OPSET",
    "OnnxEmbedder",
    "ParityError",
    "default_cache_dir",
    "exported_graphs",
    "load_exported",
    "load_onnx_embedder",
    "load_verified_from_cache",
    "onnx_file_name",
]

OPSET = 17
# Texts sorted by length run in sub-batches of this many, so a batch pads each text only to its
# neighbours' length rather than to the longest text of the whole request. Small sub-batches
# also keep both workers busy to the end (they take the next one as they finish) and ran faster
# per text: 64-text encodes of ~16-word sentences on this 2-core VM, 2 workers: 175-180 texts/s
# with 32, 215 with 16, 229-263 with 8, 211-225 with 4; beside a busy process 162-166 with 32,
# 192 with 8.
SUB_BATCH = 8
# And of at most this many tokens: the exported attention materialises a batch x 12 heads x
# tokens x tokens matrix per layer (32 texts of 256 tokens: 100 MB, kept by ONNX Runtime's
# memory arena afterwards). With it, batches of long texts also ran faster here (25-28 vs 14-21
# texts/s for 8-200 words each).
TOKENS_PER_RUN = 2048
MIN_COSINE = 0.9999
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
# Compared with torch at each load: short and long (truncated), accents and CJK, punctuation
# only; run as one padded batch (split over the workers) and one by one, so both paths and the
# padding are checked.
PROBES = (
    "hello",
    "Alice prefers green tea in the morning and coffee after lunch.",
    "Zürich, São Paulo, 東京 and Москва: café meetings ☕",
    "?!... --- ;;",
    "Quarterly revenue grew by ten percent while costs stayed flat. " * 30,
    "The meeting moved to Tuesday.",
)

_log = logging.getLogger("rae.ml.embeddings")


class ParityError(ValueError):
    """The ONNX graph does not give the torch model's vectors."""


class OnnxEmbedder(LocalEmbedder):
    """An `Embedder` over an exported transformer: mean pooling over the attention mask, then
    L2 normalisation (the Pooling and Normalize modules of all-MiniLM-L6-v2).

    One single-threaded session: up to `SMALL_BATCH` texts run on the calling thread; a larger
    batch is split into length-sorted sub-batches that `threads` workers run side by side (ONNX
    Runtime releases the GIL and a session may run concurrently). Measured against one session
    with `threads` intra-op threads on this 2-core VM: 57-130 vs 51-97 texts/s, and one copy of
    the weights (~100 MB) instead of two.
    """

    def __init__(
        self, name: str, tokenizer: Any, session: Any, *, threads: int, dimensions: int, max_tokens: int
    ) -> None:
        # The session may run concurrently: only tokenizing holds the lock.
        super().__init__(name, dimensions, max_tokens)
        self._tokenizer = tokenizer
        self._session = session
        self._threads = threads
        self._pad_id = int(tokenizer.pad_token_id or 0)
        self._inputs = [i.name for i in session.get_inputs()]

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        ids, type_ids = self._tokenize(texts)
        vectors = np.empty((len(ids), self._dimensions), dtype=np.float32)
        if len(texts) <= SMALL_BATCH or self._threads == 1:
            for chunk in _sub_batches(ids, SUB_BATCH):
                self._run(chunk, ids, type_ids, vectors)
            return _rows(vectors)
        # Every worker gets a sub-batch even when the batch is small.
        chunks = _sub_batches(ids, min(SUB_BATCH, -(-len(ids) // self._threads)))
        with ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="onnx-encode") as pool:
            for done in [pool.submit(self._run, chunk, ids, type_ids, vectors) for chunk in chunks]:
                done.result()
        return _rows(vectors)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._tokenize(texts)[0]]

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]] | None]:
        with self._lock:
            encoded = self._tokenizer(
                list(texts), truncation=True, max_length=self._max_tokens, add_special_tokens=True
            )
        return encoded["input_ids"], encoded.get("token_type_ids")

    def _run(
        self,
        chunk: list[int],
        ids: list[list[int]],
        type_ids: list[list[int]] | None,
        vectors: np.ndarray[Any, np.dtype[np.float32]],
    ) -> None:
        """Encode the texts at the indices `chunk` into their rows of `vectors`."""
        width = max(len(ids[i]) for i in chunk)
        feeds = {
            "input_ids": np.full((len(chunk), width), self._pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(chunk), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(chunk), width), dtype=np.int64),
        }
        for row, i in enumerate(chunk):
            feeds["input_ids"][row, : len(ids[i])] = ids[i]
            feeds["attention_mask"][row, : len(ids[i])] = 1
            if type_ids is not None:
                feeds["token_type_ids"][row, : len(ids[i])] = type_ids[i]
        (hidden,) = self._session.run([OUTPUT_NAME], {name: feeds[name] for name in self._inputs})
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors[chunk] = pooled / np.maximum(norms, 1e-12)


def _sub_batches(ids: list[list[int]], rows: int) -> list[list[int]]:
    """Indices of `ids` by increasing length, in groups of at most `rows` and `TOKENS_PER_RUN`
    padded tokens."""
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(ids)), key=lambda i: len(ids[i])):
        if current and (len(current) == rows or (len(current) + 1) * len(ids[i]) > TOKENS_PER_RUN):
            chunks.append(current)
            current = []
        current.append(i)
    chunks.append(current)
    return chunks


def _rows(vectors: np.ndarray[Any, np.dtype[np.float32]]) -> list[list[float]]:
    rows: list[list[float]] = vectors.tolist()
    return rows


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/rae/onnx`, else `~/.cache/rae/onnx`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rae" / "onnx"


def onnx_file_name(model_dir: Path) -> str:
    """`<sha256>.onnx` of the model's files and of what shapes the exported graph: the torch
    and transformers versions (the graph is a trace of their code) and the opset. Read from the
    installed packages' metadata: importing torch only for its version would cost seconds."""
    digest = hashlib.sha256()
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(model_dir).as_posix()}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    torch_version, transformers_version = version("torch"), version("transformers")
    digest.update(f"torch={torch_version}\0transformers={transformers_version}\0opset={OPSET}".encode())
    return f"{digest.hexdigest()}.onnx"


class _FastTokenizer:
    """The model's `tokenizer.json` through the `tokenizers` library, called like a Hugging Face
    tokenizer (the part `OnnxEmbedder` uses): no transformers import, hence no torch."""

    def __init__(self, path: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self.pad_token_id = self._tokenizer.token_to_id("[PAD]") or 0

    def __call__(self, texts: list[str], **_: Any) -> dict[str, list[list[int]]]:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        return {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings]}


def load_verified_from_cache(
    name: str, model_dir: Path, *, threads: int, cache_dir: Path
) -> OnnxEmbedder | None:
    """The cached graph with the model's own tokenizer, checked against the torch vectors stored
    beside it when it was first verified; None when either file is missing or they disagree.

    A restart then loads in about a second without importing torch (10.9 s and ~650 MB RSS
    with it, measured on this VM)."""
    target = cache_dir / onnx_file_name(model_dir)
    if not (target.exists() and target.with_suffix(".reference.json").exists()):
        return None
    try:
        return _load_checked(name, target, model_dir / "tokenizer.json", threads)
    except Exception as exc:
        _log.warning("cached ONNX model %s cannot start without torch: %s", target, exc)
        return None


def exported_graphs(name: str, cache_dir: Path) -> list[Path]:
    """The graphs of model `name` in `cache_dir` that load without the model package or torch
    (each with its reference vectors and its tokenizer beside it), newest first."""
    graphs: list[tuple[float, Path]] = []
    for reference_file in cache_dir.glob("*.reference.json") if cache_dir.is_dir() else ():
        graph = reference_file.with_name(reference_file.name.removesuffix(".reference.json") + ".onnx")
        try:
            model = json.loads(reference_file.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError):
            continue
        if model == name and graph.is_file() and graph.with_suffix(".tokenizer.json").is_file():
            graphs.append((graph.stat().st_mtime, graph))
    return [graph for _, graph in sorted(graphs, reverse=True)]


def load_exported(name: str, cache_dir: Path, *, threads: int) -> OnnxEmbedder:
    """The newest graph of `name` exported into `cache_dir`, with the tokenizer saved beside it,
    checked against the torch vectors stored when it was exported: how the service loads its
    model where torch is not installed (the ml image, whose graph was exported at build time).
    Raises FileNotFoundError when there is none, ParityError when it answers other vectors."""
    graphs = exported_graphs(name, cache_dir)
    if not graphs:
        raise FileNotFoundError(f"no exported ONNX graph of {name} in {cache_dir}")
    embedder = _load_checked(name, graphs[0], graphs[0].with_suffix(".tokenizer.json"), threads)
    _log.info("embedding model %s runs the exported graph %s", name, graphs[0])
    return embedder


def _load_checked(name: str, graph: Path, tokenizer_file: Path, threads: int) -> OnnxEmbedder:
    """`graph` with the tokenizer in `tokenizer_file`; raises unless they give the vectors and
    token counts of the torch model stored beside the graph."""
    reference = json.loads(graph.with_suffix(".reference.json").read_text(encoding="utf-8"))
    tokenizer = _FastTokenizer(tokenizer_file, int(reference["max_tokens"]))
    embedder = OnnxEmbedder(
        name,
        tokenizer,
        _session(graph),
        threads=threads,
        dimensions=int(reference["dimensions"]),
        max_tokens=int(reference["max_tokens"]),
    )
    _check(embedder, np.array(reference["probes"], dtype=np.float32), graph)
    if [len(ids) for ids in tokenizer(list(PROBES))["input_ids"]] != reference["probe_tokens"]:
        raise ParityError(f"{graph.name}: token counts differ from the torch tokenizer's")
    return embedder


def load_onnx_embedder(
    name: str,
    model: SentenceTransformer,
    model_dir: Path,
    reference: Embedder,
    *,
    threads: int,
    cache_dir: Path,
) -> OnnxEmbedder:
    """An `OnnxEmbedder` of the loaded `model`, exported into `cache_dir` unless already there.

    A cached file that does not load or does not match `reference` (the torch embedder) is
    exported again. Raises when the fresh export fails or does not match either. The model's
    tokenizer is saved beside the graph, so `load_exported` needs neither torch nor the model
    package.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / onnx_file_name(model_dir)
    embedder: OnnxEmbedder | None = None
    if target.exists():
        try:
            embedder = _verified(name, model, target, reference, threads)
        except Exception as exc:
            _log.warning("cached ONNX model %s is unusable, exporting it again: %s", target, exc)
    if embedder is None:
        _export(model, target)
        embedder = _verified(name, model, target, reference, threads)
    tokenizer_copy = target.with_suffix(".tokenizer.json")
    tokenizer = (model_dir / "tokenizer.json").read_bytes()
    if not (tokenizer_copy.exists() and tokenizer_copy.read_bytes() == tokenizer):
        _write_atomically(tokenizer_copy, tokenizer)
    return embedder


def _verified(
    name: str, model: SentenceTransformer, path: Path, reference: Embedder, threads: int
) -> OnnxEmbedder:
    embedder = OnnxEmbedder(
        name,
        model.tokenizer,
        _session(path),
        threads=threads,
        dimensions=reference.dimensions,
        max_tokens=reference.max_tokens,
    )
    expected = np.array(reference.encode(PROBES), dtype=np.float32)
    _check(embedder, expected, path)
    # What a later start checks against without loading torch (`load_verified_from_cache`).
    _write_atomically(
        path.with_suffix(".reference.json"),
        json.dumps(
            {
                "model": name,
                "dimensions": reference.dimensions,
                "max_tokens": reference.max_tokens,
                "probes": expected.tolist(),
                "probe_tokens": reference.count_tokens(PROBES),
            }
        ).encode(),
    )
    return embedder


def _check(embedder: OnnxEmbedder, expected: np.ndarray[Any, np.dtype[np.float32]], path: Path) -> None:
    """Raise ParityError unless `embedder` gives `expected` for the probes, batched and one by one."""
    batched = np.array(embedder.encode(PROBES))
    one_by_one = np.array([embedder.encode([probe])[0] for probe in PROBES])
    cosine = min(float((expected * got).sum(axis=1).min()) for got in (batched, one_by_one))
    if cosine < MIN_COSINE:
        raise ParityError(f"{path.name}: cosine {cosine:.6f} with the torch model, below {MIN_COSINE}")


# mkstemp makes its file private (0600); the cache is written by one user and may be read by
# another: the image's graph is exported by root at build time and read by the service's uid.
CACHE_FILE_MODE = 0o644


def _write_atomically(target: Path, content: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, CACHE_FILE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _session(path: Path) -> Any:
    """A session that runs each call on the calling thread alone (no pool of its own)."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export(model: SentenceTransformer, target: Path) -> None:
    """Trace the transformer (without pooling, done in numpy) into `target`, atomically:
    written beside it under a temporary name, then renamed, so a concurrent starter sees
    either no file or a whole one."""
    import torch

    transformer = cast(torch.nn.Module, model[0].auto_model)
    example = model.tokenizer(
        ["a probe", "a longer probe, so that the traced batch carries padding"],
        padding=True,
        return_tensors="pt",
    )
    names = [n for n in INPUT_NAMES if n in example]

    # A local class sits in a reference cycle until the garbage collector runs: it must not
    # hold the weights (no closure over `transformer`), or they outlive the export.
    class LastHiddenState(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module, names: list[str]) -> None:
            super().__init__()
            self.transformer = transformer
            self.names = names

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            output = self.transformer(**dict(zip(self.names, inputs, strict=True)))
            return cast(torch.Tensor, output.last_hidden_state)

    _log.info("exporting the embedding model to ONNX (once per model and torch version): %s", target)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    os.fchmod(descriptor, CACHE_FILE_MODE)
    os.close(descriptor)
    try:
        # The TorchScript exporter warns about its own deprecation and about trace-time
        # constants; the parity check against torch is what proves the graph right.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState(transformer, names).eval(),
                tuple(example[n] for n in names),
                temporary,
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, OUTPUT_NAME]},
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
