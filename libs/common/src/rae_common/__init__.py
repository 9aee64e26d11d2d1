"""Shared library of the RAE services.

Modules: `settings`, `app` (factory), `errors` (problem+json), `middleware`, `logs`,
`telemetry` (traces and request metrics), `health`, `events` (envelope and registry),
`messaging` (Kafka), `outbox`, `inbox`, `db` (pool and migrations), `auth` (JWT, tenant),
`resources` (lifespan building blocks).
"""

__version__ = "0.1.0"
