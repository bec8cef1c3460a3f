"""TLS and SASL settings reach every Kafka client Tact makes: aiokafka's and Faust's.

The embedded broker speaks plaintext only, so these tests inspect the clients' configuration
(as aiokafka's own checks accept it) rather than connect."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from click.testing import CliRunner
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from app.cli import main
from app.config import Settings
from app.kafka_security import client_options, faust_credentials
from app.stream.app import build_app

TLS = Path(__file__).parents[1] / "fixtures" / "tls"


def _settings(tmp_path, **changes) -> Settings:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    base = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "tact",
        "kafka_sasl_password_file": secret,
        "kafka_ssl_cafile": TLS / "ca.crt",
        "kafka_ssl_certfile": TLS / "client.crt",
        "kafka_ssl_keyfile": TLS / "client.key",
    }
    return Settings(**{**base, **changes})


async def test_sasl_over_tls_reaches_aiokafka_clients(tmp_path):
    options = client_options(_settings(tmp_path))
    assert options["sasl_plain_password"] == "s3cret"  # from the file's first line
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "tact-test"),),)
    producer = AIOKafkaProducer(bootstrap_servers="kafka:9093", **options)
    consumer = AIOKafkaConsumer(bootstrap_servers="kafka:9093", **options)
    for client in (producer.client, consumer._client):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "tact"
        assert client._ssl_context is context


def test_the_worker_hands_the_same_to_faust(tmp_path):
    settings = _settings(tmp_path, kafka_sasl_mechanism="SCRAM-SHA-256", store="memory://")
    app = build_app(settings)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("tact", "s3cret")
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_tls_alone_and_plaintext(tmp_path):
    tls = _settings(tmp_path, kafka_security_protocol="SSL")
    assert set(client_options(tls)) == {"security_protocol", "ssl_context"}
    assert faust_credentials(tls).protocol.value == "SSL"
    plain = Settings()
    assert client_options(plain) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(plain) is None


def test_sasl_without_a_login_and_missing_files_are_named(tmp_path):
    result = CliRunner().invoke(
        main, ["tail", "decisions"], env={"TACT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
    )
    assert result.exit_code == 2
    assert "needs TACT_KAFKA_SASL_USERNAME and TACT_KAFKA_SASL_PASSWORD" in result.output
    with pytest.raises(ValueError, match="TACT_KAFKA_SSL_"):
        client_options(_settings(tmp_path, kafka_ssl_cafile=tmp_path / "missing.crt"))
