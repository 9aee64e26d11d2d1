"""Extraction use case: an LLM constrained by the extraction schema, or the offline extractor
when the model is the `local` one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rae_common.contracts.ml import LOCAL_EXTRACT_NOTICE, ExtractRequest, Usage
from rae_ml.domain.extraction import (
    Extraction,
    extract_offline,
    extraction_messages,
    extraction_schema,
    normalise_llm_extraction,
)
from rae_ml.domain.generation import LOCAL_PROVIDER, ChatCall, Message
from rae_ml.generation_service import GenerationService
from rae_ml.usage import CallContext

__all__ = ["EXTRACT_MAX_TOKENS", "Extracted", "ExtractionService"]

# Room for the JSON of a long text's graph; a provider stops earlier when it is done.
EXTRACT_MAX_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class Extracted:
    extraction: Extraction
    usage: Usage
    notice: str | None


class ExtractionService:
    def __init__(self, generation: GenerationService, *, default_model: str) -> None:
        self.generation = generation
        self.default_model = default_model

    async def extract(self, ctx: CallContext, request: ExtractRequest) -> Extracted:
        """Raises UnknownGenerationModel, AmbiguousModel and what `GenerationService.generate`
        raises."""
        model = self.generation.resolve(request.model or self.default_model)
        types = request.entity_types
        if model.provider == LOCAL_PROVIDER:
            ledger = self.generation.ledger
            async with ledger.metered(ctx, "extract", model.provider, model.name) as meter:
                extraction = await asyncio.to_thread(extract_offline, request.text, types)
                meter.count(await self.generation.estimate([request.text]), 0, estimated=False)
            assert meter.usage is not None
            return Extracted(extraction, meter.usage, LOCAL_EXTRACT_NOTICE)
        call = ChatCall(
            model=model.name,
            messages=[Message(role, content) for role, content in extraction_messages(request.text, types)],
            max_tokens=EXTRACT_MAX_TOKENS,
            temperature=0.0,
            json_schema=extraction_schema(types),
        )
        generated = await self.generation.generate(ctx, model, call, operation="extract")
        return Extracted(normalise_llm_extraction(generated.output, types), generated.usage, None)
