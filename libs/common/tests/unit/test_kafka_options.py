"""Kafka connection options: what each security protocol gives every client, and the settings
combinations refused at start-up."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from rae_common.kafka_options import KafkaOptions
from rae_common.messaging import KafkaConsumerLoop, KafkaPublisher, kafka_options
from rae_common.settings import ServiceSettings


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate, as an operator's KAFKA_SSL_CA_FILE would hold."""
    folder = tmp_path_factory.mktemp("ca")
    cert = folder / "ca.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=rae-test-ca", "-keyout", str(folder / "ca.key"), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert


def settings(**env: str) -> ServiceSettings:
    return ServiceSettings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]


def test_plaintext_gives_only_the_address() -> None:
    options = KafkaOptions("k1:9092,k2:9092")
    assert options.client_kwargs() == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert options.producer_kwargs()["enable_idempotence"] is True


def test_ssl_trusts_the_given_ca(ca_file: Path) -> None:
    kwargs = KafkaOptions("k:9093", security_protocol="SSL", ssl_ca_file=str(ca_file)).client_kwargs()
    context = kwargs.pop("ssl_context")
    assert kwargs == {"bootstrap_servers": "k:9093", "security_protocol": "SSL"}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "rae-test-ca"),),)]


def test_ssl_without_a_ca_file_trusts_the_system() -> None:
    context = KafkaOptions("k:9093", security_protocol="SSL").client_kwargs()["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_sends_the_credentials(mechanism: str) -> None:
    options = KafkaOptions(
        "k:9094",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,  # type: ignore[arg-type]
        sasl_username="rae",
        sasl_password="pw",
    )
    assert options.client_kwargs() == {
        "bootstrap_servers": "k:9094",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "rae",
        "sasl_plain_password": "pw",
    }
    assert "pw" not in repr(options)


def test_sasl_ssl_sends_the_credentials_over_tls(ca_file: Path) -> None:
    kwargs = KafkaOptions(
        "k:9095",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="rae",
        sasl_password="pw",
        ssl_ca_file=str(ca_file),
    ).client_kwargs()
    assert isinstance(kwargs.pop("ssl_context"), ssl.SSLContext)
    assert kwargs == {
        "bootstrap_servers": "k:9095",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "rae",
        "sasl_plain_password": "pw",
    }


def test_settings_reach_the_options(ca_file: Path) -> None:
    options = settings(
        KAFKA_BOOTSTRAP_SERVERS="k:9095",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME="rae",
        KAFKA_SASL_PASSWORD="pw",
        KAFKA_SSL_CA_FILE=str(ca_file),
        KAFKA_TOPIC_PARTITIONS="6",
        KAFKA_TOPIC_REPLICATION_FACTOR="3",
    ).kafka_options()
    assert options == KafkaOptions(
        "k:9095",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="rae",
        sasl_password="pw",
        ssl_ca_file=str(ca_file),
        topic_partitions=6,
        topic_replication_factor=3,
        enable_idempotence=True,
    )


def test_idempotence_is_on_unless_a_setting_turns_it_off() -> None:
    assert settings().kafka_options().producer_kwargs()["enable_idempotence"] is True
    off = settings(KAFKA_ENABLE_IDEMPOTENCE="false").kafka_options()
    assert off.producer_kwargs()["enable_idempotence"] is False
    assert "enable_idempotence" not in off.client_kwargs()  # consumers and admin clients take none


def test_empty_variables_mean_unset() -> None:
    """`.env.example` lists the optional ones empty: copied as is, it still starts."""
    options = settings(KAFKA_SASL_MECHANISM="", KAFKA_SASL_USERNAME="", KAFKA_SSL_CA_FILE="").kafka_options()
    assert (options.sasl_mechanism, options.sasl_username, options.sasl_password, options.ssl_ca_file) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "GSSAPI"},
            "kafka_sasl_mechanism",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "rae",
            },
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "rae", "KAFKA_SASL_PASSWORD": "pw"}, "need KAFKA_SECURITY_PROTOCOL=SASL_"),
        ({"KAFKA_SSL_CA_FILE": "/etc/hostname"}, "KAFKA_SSL_CA_FILE needs KAFKA_SECURITY_PROTOCOL=SSL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/no/such/ca.pem"},
            "KAFKA_SSL_CA_FILE=/no/such/ca.pem is not a readable file",
        ),
        ({"KAFKA_TOPIC_PARTITIONS": "0"}, "kafka_topic_partitions"),
        ({"KAFKA_TOPIC_REPLICATION_FACTOR": "0"}, "kafka_topic_replication_factor"),
    ],
)
def test_inconsistent_kafka_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**env)


def test_services_build_their_clients_from_the_options(ca_file: Path) -> None:
    options = KafkaOptions("k:9093", security_protocol="SSL", ssl_ca_file=str(ca_file))

    async def handler(*_: object) -> None:
        return None

    assert KafkaPublisher(options, client_id="p").options is options
    assert KafkaConsumerLoop(options, group_id="g", topics=["t"], handler=handler).options is options


def test_a_bare_address_is_the_local_broker() -> None:
    """Tests and the bench name the local broker by its address alone: plaintext, no idempotence
    (it lacks InitProducerId). Services never do: they pass their settings' options."""
    assert kafka_options("kafka:9092") == KafkaOptions("kafka:9092", enable_idempotence=False)
