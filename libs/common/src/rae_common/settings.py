"""Settings shared by every service: one pydantic-settings class per service extends this."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rae_common.kafka_options import KafkaOptions, SaslMechanism, SecurityProtocol

__all__ = [
    "CREDENTIAL_SETTINGS",
    "DEPLOYED_REQUIRES",
    "INFRASTRUCTURE",
    "INFRASTRUCTURE_SETTINGS",
    "Infrastructure",
    "ServiceSettings",
    "require",
]

Infrastructure = Literal["postgres", "kafka", "redis", "neo4j", "qdrant", "auth"]
INFRASTRUCTURE: tuple[Infrastructure, ...] = ("postgres", "kafka", "redis", "neo4j", "qdrant", "auth")


class ServiceSettings(BaseSettings):
    """Every infrastructure URL and cross-cutting knob, read from the environment (or `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    #: What this service connects to. A service reads the settings of `INFRASTRUCTURE_SETTINGS`
    #: only for what it declares here (opening anything else fails: `require`), so the Helm
    #: chart, which gives each service exactly these settings, cannot leave one out.
    uses: ClassVar[frozenset[Infrastructure]] = frozenset()
    #: The Kafka topics this service produces to or consumes from: it creates them at start-up
    #: (KAFKA_CREATE_TOPICS), and its consumers may subscribe to these only.
    topics: ClassVar[frozenset[str]] = frozenset()

    service_name: str = "rae"
    environment: str = Field(default="local", validation_alias="RAE_ENVIRONMENT")
    log_level: str = "INFO"

    database_url: str = "postgresql://rae:rae@127.0.0.1:25432/rae"
    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=10, ge=1)
    # Bounds on waiting for Postgres (rae_common.db.PoolTimeouts): a request that finds no free
    # connection in time answers 503 with Retry-After; Postgres cancels a longer statement and
    # ends a session left idle inside a transaction longer than that.
    database_acquire_timeout_s: float = Field(default=5.0, gt=0)
    database_statement_timeout_s: float = Field(default=30.0, gt=0)
    database_idle_in_transaction_timeout_s: float = Field(default=150.0, gt=0)
    # At shutdown, longest wait for connections still checked out before they are closed hard.
    database_close_timeout_s: float = Field(default=3.0, gt=0)
    # False: the service applies no migration at start-up and refuses to start while its schema
    # lacks one (`rae-migrate` applies them with a privileged URL beforehand, e.g. in an init
    # container); DATABASE_URL can then name a role that may only read and write rows.
    database_migrate_on_start: bool = True
    # The role the service runs as, when migrations run as another one: whoever migrates
    # (`rae-migrate`, or the service at start-up) grants it the use of the service's tables.
    database_app_role: str = ""
    # At shutdown, how long the background loops (Kafka consumers, the outbox relay) may finish
    # the work in hand, all at once, before it is cancelled (and done again after the restart).
    # The budget: UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN + this + 1 s to unwind +
    # DATABASE_CLOSE_TIMEOUT_S must fit the grace period before SIGKILL (docs/ARCHITECTURE.md).
    background_stop_timeout_s: float = Field(default=3.0, gt=0)
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    # Real Kafka rejects session timeouts under 6000 ms; the local broker joins faster with less.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=1)
    # Longest a consumer's fetch waits for new records: every consumer hop costs up to this much
    # latency when traffic is light (aiokafka's default, 500, put ~200 ms on each hop locally).
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=1)
    # How every producer, consumer and admin client connects (rae_common.kafka_options): checked
    # together at start-up, so a half-configured SASL or TLS set-up fails with the setting to fix.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_file: str | None = None
    # Off only for a broker without InitProducerId (the local one: the local stack sets it).
    kafka_enable_idempotence: bool = True
    # For the topics the services create when missing.
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_topic_replication_factor: int = Field(default=1, ge=1)
    # True: a service creates the topics it uses (`topics`) when they are missing; false: it only
    # checks they exist and is not ready until they do (topics managed by the operator).
    kafka_create_topics: bool = True
    neo4j_uri: str = "bolt://127.0.0.1:17687"
    neo4j_user: str = "root"
    neo4j_password: SecretStr = SecretStr("")
    neo4j_database: str = "graph"
    redis_url: str = "redis://127.0.0.1:16379/0"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr = SecretStr("")

    jwt_secret: SecretStr = SecretStr("")
    rae_admin_token: SecretStr = SecretStr("")

    otel_exporter_otlp_endpoint: str | None = None
    app_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    readiness_timeout_s: float = Field(default=2.0, gt=0)

    outbox_poll_interval_s: float = Field(default=0.2, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1)
    # Published outbox events are kept this long after they were written, so that what a broker
    # lost can be published again (POST /v1/outbox/republish); then deleted. Kafka's own default
    # log retention: 7 days.
    outbox_retention_hours: float = Field(default=168.0, ge=0)

    gateway_url: str = "http://127.0.0.1:8000"
    memory_url: str = "http://127.0.0.1:8001"
    ml_url: str = "http://127.0.0.1:8002"
    graph_url: str = "http://127.0.0.1:8003"
    reflection_url: str = "http://127.0.0.1:8004"
    cost_url: str = "http://127.0.0.1:8005"
    events_url: str = "http://127.0.0.1:8006"

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_ssl_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `.env.example` lists them empty: an empty variable means "not set".
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_kafka(self) -> ServiceSettings:
        self.kafka_options()  # raises ValueError naming the setting to fix
        return self

    @model_validator(mode="after")
    def _deployed_names_its_infrastructure(self) -> ServiceSettings:
        # The defaults are the local stack's addresses on 127.0.0.1. Deployed, a service left
        # without one would reach for a server that is not there (or, worse, another one that
        # is): it stops at start-up naming the variable instead.
        if self.environment == "local":
            return self
        missing = [
            name.upper()
            for infrastructure in sorted(type(self).uses)
            for name in DEPLOYED_REQUIRES.get(infrastructure, ())
            if name not in self.model_fields_set
        ]
        if missing:
            raise ValueError(
                f"RAE_ENVIRONMENT={self.environment} needs {', '.join(missing)}: outside the local "
                "stack no infrastructure address has a default"
            )
        return self

    def kafka_options(self) -> KafkaOptions:
        """The options every Kafka client of this service is built with."""
        return KafkaOptions(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password.get_secret_value() or None,
            ssl_ca_file=self.kafka_ssl_ca_file,
            topic_partitions=self.kafka_topic_partitions,
            topic_replication_factor=self.kafka_topic_replication_factor,
            enable_idempotence=self.kafka_enable_idempotence,
            create_topics=self.kafka_create_topics,
        )

    @field_validator("app_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # A comma-separated env value is friendlier than JSON for a list of origins.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


#: The shared settings that belong to one kind of infrastructure: a service has them only when its
#: class `uses` it. Every other shared setting applies to every service.
INFRASTRUCTURE_SETTINGS: Mapping[Infrastructure, tuple[str, ...]] = {
    "postgres": (
        "database_url",
        "database_pool_min",
        "database_pool_max",
        "database_acquire_timeout_s",
        "database_statement_timeout_s",
        "database_idle_in_transaction_timeout_s",
        "database_close_timeout_s",
        "database_migrate_on_start",
        "database_app_role",
        "outbox_poll_interval_s",
        "outbox_batch_size",
        "outbox_retention_hours",
    ),
    "kafka": (
        "kafka_bootstrap_servers",
        "kafka_session_timeout_ms",
        "kafka_heartbeat_interval_ms",
        "kafka_fetch_max_wait_ms",
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_ca_file",
        "kafka_enable_idempotence",
        "kafka_topic_partitions",
        "kafka_topic_replication_factor",
        "kafka_create_topics",
    ),
    "redis": ("redis_url",),
    "neo4j": ("neo4j_uri", "neo4j_user", "neo4j_password", "neo4j_database"),
    "qdrant": ("qdrant_url", "qdrant_api_key"),
    "auth": ("jwt_secret", "rae_admin_token"),
}

#: The settings a service outside the local stack (RAE_ENVIRONMENT other than `local`) must be
#: given for each kind of infrastructure it uses: their defaults are the local stack's addresses.
DEPLOYED_REQUIRES: Mapping[Infrastructure, tuple[str, ...]] = {
    "postgres": ("database_url",),
    "kafka": ("kafka_bootstrap_servers",),
    "redis": ("redis_url",),
    "neo4j": ("neo4j_uri",),
}

#: Plain-string settings that may carry a password (in the URL): deployed as secrets, like every
#: `SecretStr` setting.
CREDENTIAL_SETTINGS: frozenset[str] = frozenset({"database_url", "redis_url"})


def require(settings: ServiceSettings, infrastructure: Infrastructure) -> None:
    """Fail when a service opens infrastructure its settings class does not declare in `uses`:
    its deployment (the Helm chart) would not give it the settings to reach it."""
    declared = type(settings).uses
    if infrastructure not in declared:
        raise RuntimeError(
            f"{type(settings).__name__} opens {infrastructure} but declares uses={sorted(declared)}: "
            f"add {infrastructure!r} to its `uses` so that its deployment gets the {infrastructure} settings"
        )
