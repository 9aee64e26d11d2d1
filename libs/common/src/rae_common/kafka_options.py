"""How every Kafka client of the suite connects: one set of options, built once from settings.

Every producer, consumer and admin client gets its connection arguments from
`KafkaOptions.client_kwargs` (producers from `producer_kwargs`), so a cluster's security protocol,
SASL credentials and CA reach all of them, and none can be built without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from aiokafka.helpers import create_ssl_context

__all__ = ["SASL_MECHANISMS", "SECURITY_PROTOCOLS", "KafkaOptions", "SaslMechanism", "SecurityProtocol"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """A broker's address and how to talk to it; an inconsistent set raises `ValueError` with the
    setting to fix (the messages name the environment variables of `ServiceSettings`).

    `enable_idempotence` is on by default: a producer retrying after a lost acknowledgement then
    cannot write a record twice or out of order. Only the local broker, which lacks
    InitProducerId, needs it off (the local stack sets KAFKA_ENABLE_IDEMPOTENCE=false)."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_file: str | None = None
    topic_partitions: int = 3
    topic_replication_factor: int = 1
    enable_idempotence: bool = True
    # Whether a missing topic may be created (KAFKA_CREATE_TOPICS), or only reported.
    create_topics: bool = True

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is empty")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol!r} is not one of "
                f"{', '.join(SECURITY_PROTOCOLS)}"
            )
        sasl = self.security_protocol.startswith("SASL_")
        if sasl:
            if self.sasl_mechanism is None:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_MECHANISM "
                    f"({', '.join(SASL_MECHANISMS)})"
                )
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ValueError(
                    f"KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME and "
                    "KAFKA_SASL_PASSWORD"
                )
        elif self.sasl_mechanism is not None or self.sasl_username or self.sasl_password:
            # Credentials given to a protocol that never sends them: a half-done configuration
            # that would otherwise connect without authenticating.
            raise ValueError(
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD need "
                f"KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL (it is {self.security_protocol})"
            )
        if self.ssl_ca_file is not None:
            if not self.security_protocol.endswith("SSL"):
                raise ValueError(
                    "KAFKA_SSL_CA_FILE needs KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL "
                    f"(it is {self.security_protocol})"
                )
            if not Path(self.ssl_ca_file).is_file():
                raise ValueError(f"KAFKA_SSL_CA_FILE={self.ssl_ca_file} is not a readable file")
        if self.topic_partitions < 1:
            raise ValueError(f"KAFKA_TOPIC_PARTITIONS must be at least 1 (it is {self.topic_partitions})")
        if self.topic_replication_factor < 1:
            raise ValueError(
                f"KAFKA_TOPIC_REPLICATION_FACTOR must be at least 1 (it is {self.topic_replication_factor})"
            )

    @classmethod
    def local(cls, bootstrap_servers: str) -> KafkaOptions:
        """A plaintext broker without idempotent producers: the local stack's (tests, bench)."""
        return cls(bootstrap_servers, enable_idempotence=False)

    def client_kwargs(self) -> dict[str, Any]:
        """The connection arguments of every aiokafka client (producer, consumer, admin).

        The CA file is read here, at each client's creation: a client built after the file was
        rotated trusts the new CA. Without a CA file, SSL trusts the system's CAs."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.endswith("SSL"):
            kwargs["ssl_context"] = create_ssl_context(cafile=self.ssl_ca_file)
        if self.security_protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def producer_kwargs(self) -> dict[str, Any]:
        """`client_kwargs` and the producer's idempotence."""
        return {**self.client_kwargs(), "enable_idempotence": self.enable_idempotence}
