"""`make demo`: ingest the sample documents through the gateway and run a few searches.

Runs against the stack `make up` started (the same --state-dir/--port-offset, by default
$RAE_LOCAL_STATE_DIR/$RAE_LOCAL_PORT_OFFSET): creates a tenant and an API key with the admin token,
uploads every file in samples/, then prints the top hits of a few questions with their scores.
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
import uuid
from pathlib import Path

import httpx

from rae_localstack import Stack, add_stack_options, stack_from_args

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
DOCUMENT_SUFFIXES = {".md", ".html", ".txt", ".pdf", ".docx"}
QUESTIONS = [
    "Who owns the deployment pipeline?",
    "When did we move to PostgreSQL?",
    "What does the team prefer for meetings?",
    "When does Tern 2.0 ship?",
    "How do new engineers get access on their first day?",
]


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def gateway_problem(stack: Stack) -> str | None:
    """Why the demo cannot run against ``stack``'s gateway, or None when it is ready."""
    gateway = stack.service_url("gateway")
    where = f"{gateway} (state dir {stack.state_dir}, port offset {stack.port_offset})"
    try:
        ready = httpx.get(f"{gateway}/readyz", timeout=5)
    except httpx.HTTPError:
        return (
            f"no RAE gateway answers at {where}; start the stack with `make up` and the same "
            "RAE_LOCAL_PORT_OFFSET / RAE_LOCAL_STATE_DIR"
        )
    if ready.status_code != 200:
        return (
            f"the RAE gateway at {where} is not ready ({ready.status_code} {ready.text}); see `make status`"
        )
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_stack_options(parser)
    stack = stack_from_args(parser.parse_args())
    problem = gateway_problem(stack)
    if problem is not None:
        sys.stderr.write(f"make demo: {problem}\n")
        return 1
    env = stack.service_env()
    gateway = stack.service_url("gateway")
    tenant = f"demo-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=gateway, timeout=120) as client:
        admin = {"Authorization": f"Bearer {env['RAE_ADMIN_TOKEN']}"}
        created = client.post("/v1/admin/tenants", json={"id": tenant, "name": "Demo tenant"}, headers=admin)
        created.raise_for_status()
        key = client.post(
            f"/v1/admin/tenants/{tenant}/api-keys",
            json={"name": "demo", "scopes": ["memories:read", "memories:write"]},
            headers=admin,
        )
        key.raise_for_status()
        headers = {"X-API-Key": key.json()["key"]}
        out(f"tenant {tenant}, API key {key.json()['prefix']}… (shown once, not printed)\n")

        documents = sorted(
            p for p in SAMPLES.iterdir() if p.suffix in DOCUMENT_SUFFIXES and p.stem != "README"
        )
        for path in documents:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            answer = client.post(
                "/v1/memories/ingest",
                files={"file": (path.name, path.read_bytes(), content_type)},
                data={"tags": "demo,northwind", "subject": "northwind"},
                headers=headers,
            )
            if answer.status_code != 201:
                out(f"  {path.name}: {answer.status_code} {answer.text}")
                return 1
            body = answer.json()
            out(f"ingested {path.name:<28} {body['kind']:<9} {body['chunk_count']:>3} chunks")

        for question in QUESTIONS:
            answer = client.post("/v1/search/hybrid", json={"query": question, "k": 3}, headers=headers)
            answer.raise_for_status()
            out(f"\nQ: {question}")
            for hit in answer.json()["results"]:
                parts = hit["scores"]
                text = " ".join(hit["content"].split())
                out(
                    f"  {hit['score']:.3f} (vec {parts['vector']:.2f} lex {parts['lexical']:.2f})"
                    f" [{hit['metadata'].get('document', '?')}] {text[:110]}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
