"""/openapi.json describes every public route with its request and response models."""

from __future__ import annotations

import httpx
import pytest

# (method, path) -> (request body schema per media type, success status, response schema)
PUBLIC = {
    ("post", "/v1/memories"): ({"application/json": "MemoryCreate"}, "201", "MemoryOut"),
    ("post", "/v1/memories/batch"): ({"application/json": "BatchCreate"}, "201", "BatchResult"),
    ("post", "/v1/memories/ingest"): (
        {"application/json": "IngestText", "multipart/form-data": None},
        "201",
        "IngestResult",
    ),
    ("get", "/v1/memories"): ({}, "200", "MemoryPage"),
    ("delete", "/v1/memories"): ({}, "200", "EraseResult"),
    ("get", "/v1/memories/{memory_id}"): ({}, "200", "MemoryOut"),
    ("patch", "/v1/memories/{memory_id}"): ({"application/json": "MemoryPatch"}, "200", "MemoryOut"),
    ("delete", "/v1/memories/{memory_id}"): ({}, "204", None),
    ("post", "/v1/search/hybrid"): ({"application/json": "HybridSearchRequest"}, "200", "SearchResponse"),
    ("post", "/v1/ml/embed"): ({"application/json": "EmbedRequest"}, "200", "EmbedResponse"),
    ("post", "/v1/ml/generate"): ({"application/json": "GenerateRequest"}, "200", "GenerateResponse"),
    ("post", "/v1/ml/extract"): ({"application/json": "ExtractRequest"}, "200", "ExtractResponse"),
    ("get", "/v1/governance/tenant/{tenant_id}/budget"): ({}, "200", "BudgetOut"),
    ("put", "/v1/governance/tenant/{tenant_id}/budget"): (
        {"application/json": "BudgetIn"},
        "200",
        "BudgetOut",
    ),
    ("get", "/v1/governance/tenant/{tenant_id}"): ({}, "200", "TenantUsage"),
    ("get", "/v1/governance/overview"): ({}, "200", "Overview"),
    ("get", "/v1/governance"): ({}, "200", "GovernanceIndex"),
    ("get", "/v1/cost/logs"): ({}, "200", "CostLogPage"),
    ("get", "/v1/events/log"): ({}, "200", "EventPage"),
    ("get", "/v1/events/rules"): ({}, "200", "RulePage"),
    ("post", "/v1/events/rules"): ({"application/json": None}, "201", "RuleOut"),
    ("get", "/v1/events/rules/{rule_id}"): ({}, "200", "RuleOut"),
    ("put", "/v1/events/rules/{rule_id}"): ({"application/json": None}, "200", "RuleOut"),
    ("delete", "/v1/events/rules/{rule_id}"): ({}, "204", None),
    ("get", "/v1/events/triggers"): ({}, "200", "FiringPage"),
    ("get", "/v1/events/dlq"): ({}, "200", "DeadLetterPage"),
    ("post", "/v1/events/dlq/{entry_id}/replay"): ({}, "202", "Replay"),
    ("get", "/v1/status"): ({}, "200", "SuiteStatus"),
    ("get", "/v1/graph/nodes"): ({}, "200", "NodePage"),
    ("get", "/v1/graph/edges"): ({}, "200", "EdgePage"),
    ("get", "/v1/graph/nodes/{node_id}/neighbors"): ({}, "200", "SubgraphOut"),
    ("get", "/v1/graph/subgraph"): ({}, "200", "SubgraphOut"),
    ("get", "/v1/graph/path"): ({}, "200", "PathOut"),
    ("get", "/v1/graph/stats"): ({}, "200", "StatsOut"),
    ("post", "/v1/graph/extract"): ({"application/json": "GraphExtractRequest"}, "200", "ExtractResult"),
    ("post", "/v1/search/graph"): ({"application/json": "GraphSearchRequest"}, "200", "GraphSearchResponse"),
    ("get", "/v1/reflections"): ({}, "200", "ReflectionPage"),
    ("post", "/v1/reflections/trigger"): ({"application/json": None}, "202", "TriggerAccepted"),
    ("get", "/v1/reflections/{reflection_id}"): ({}, "200", "ReflectionDetail"),
    ("post", "/v1/evaluations"): ({"application/json": "EvaluationRequest"}, "201", "EvaluationOut"),
    ("get", "/v1/evaluations/{evaluation_id}"): ({}, "200", "EvaluationOut"),
    ("post", "/v1/admin/tenants"): ({"application/json": "TenantCreate"}, "201", "TenantOut"),
    ("get", "/v1/admin/tenants"): ({}, "200", "TenantPage"),
    ("get", "/v1/admin/tenants/{tenant_id}"): ({}, "200", "TenantOut"),
    ("get", "/v1/admin/tenants/{tenant_id}/limits"): ({}, "200", "TenantLimits"),
    ("put", "/v1/admin/tenants/{tenant_id}/limits"): (
        {"application/json": "LimitOverrides"},
        "200",
        "TenantLimits",
    ),
    ("post", "/v1/admin/tenants/{tenant_id}/api-keys"): (
        {"application/json": "ApiKeyCreate"},
        "201",
        "ApiKeyCreated",
    ),
    ("get", "/v1/admin/tenants/{tenant_id}/api-keys"): ({}, "200", "ApiKeyPage"),
    ("delete", "/v1/admin/tenants/{tenant_id}/api-keys/{key_id}"): ({}, "204", None),
    ("post", "/v1/admin/outbox/republish"): (
        {"application/json": "RepublishRequest"},
        "200",
        "RepublishAnswer",
    ),
}
LIMITED = {
    ("post", "/v1/memories"),
    ("post", "/v1/memories/batch"),
    ("post", "/v1/memories/ingest"),
    ("post", "/v1/search/hybrid"),
    ("post", "/v1/ml/generate"),
    ("post", "/v1/ml/extract"),
    # Not rate-limited, but budget-guarded: 429 while the budget is held by requests in flight.
    ("post", "/v1/graph/extract"),
    ("post", "/v1/reflections/trigger"),
}


@pytest.fixture
async def spec(gateway: httpx.AsyncClient) -> dict:
    response = await gateway.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


async def test_every_public_route_is_described_with_its_models(spec: dict) -> None:
    documented = {
        (method, path) for path, ops in spec["paths"].items() for method in ops if path.startswith("/v1")
    }
    assert documented == set(PUBLIC)
    schemas = spec["components"]["schemas"]
    for (method, path), (bodies, status, response) in PUBLIC.items():
        operation = spec["paths"][path][method]
        content = operation.get("requestBody", {}).get("content", {})
        assert set(content) == set(bodies), (method, path)
        for media_type, model in bodies.items():
            if model:
                assert content[media_type]["schema"] == ref(model), (method, path)
                assert model in schemas
        assert status in operation["responses"], (method, path)
        if response:
            assert operation["responses"][status]["content"]["application/json"]["schema"] == ref(response)
        for problem in ("401", "403", "422"):
            problem_content = operation["responses"][problem]["content"]
            assert problem_content == {"application/problem+json": {"schema": ref("Problem")}}
        assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
        assert ("429" in operation["responses"]) == ((method, path) in LIMITED), (method, path)


async def test_limited_routes_document_their_headers(spec: dict) -> None:
    too_many = spec["paths"]["/v1/search/hybrid"]["post"]["responses"]["429"]
    assert set(too_many["headers"]) == {
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    }


async def test_multipart_ingestion_names_its_fields(spec: dict) -> None:
    form = spec["paths"]["/v1/memories/ingest"]["post"]["requestBody"]["content"]["multipart/form-data"][
        "schema"
    ]
    assert form["required"] == ["file"]
    assert set(form["properties"]) == {"file", "layer", "tags", "subject", "metadata"}
    assert form["properties"]["layer"] == ref("Layer")
    assert "Layer" in spec["components"]["schemas"]


async def test_list_filters_are_documented(spec: dict) -> None:
    names = {p["name"] for p in spec["paths"]["/v1/memories"]["get"]["parameters"]}
    assert names == {"layer", "tags", "since", "until", "metadata", "subject", "cursor", "limit"}
    erase = spec["paths"]["/v1/memories"]["delete"]["parameters"]
    assert [(p["name"], p["required"]) for p in erase] == [("subject", True)]
