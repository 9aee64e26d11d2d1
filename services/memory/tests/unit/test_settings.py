"""The vector store setting: Qdrant is a server unless the in-process store is chosen explicitly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rae_memory.main import MemorySettings


def test_qdrant_without_a_url_refuses_to_start_instead_of_using_a_throwaway_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VECTOR_BACKEND", "qdrant")
    monkeypatch.delenv("QDRANT_URL", raising=False)
    with pytest.raises(ValidationError, match=r"VECTOR_BACKEND=qdrant needs QDRANT_URL") as refused:
        MemorySettings(_env_file=None)
    assert "QDRANT_URL=:memory:" in str(refused.value)  # how to ask for the in-process store
    monkeypatch.setenv("QDRANT_URL", "")  # an empty line of .env.example is no URL either
    with pytest.raises(ValidationError, match=r"VECTOR_BACKEND=qdrant needs QDRANT_URL"):
        MemorySettings(_env_file=None)


@pytest.mark.parametrize("url", ["http://qdrant:6333", ":memory:"])
def test_qdrant_with_a_server_or_the_explicit_in_process_store_is_accepted(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("VECTOR_BACKEND", "qdrant")
    monkeypatch.setenv("QDRANT_URL", url)
    settings = MemorySettings(_env_file=None)
    assert (settings.vector_backend, settings.qdrant_url) == ("qdrant", url)


def test_pgvector_needs_no_qdrant_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VECTOR_BACKEND", raising=False)
    monkeypatch.delenv("QDRANT_URL", raising=False)
    assert MemorySettings(_env_file=None).vector_backend == "pgvector"
