"""How Tact's Kafka clients authenticate: TLS (a CA, a client certificate) and SASL (PLAIN,
SCRAM-SHA-256/512), from the TACT_KAFKA_* settings, for aiokafka's clients and Faust's alike."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context
from faust.auth import SASLCredentials, SSLCredentials

if TYPE_CHECKING:
    from app.config import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for SSL and SASL_SSL (None for the plaintext protocols)."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=_path(settings.kafka_ssl_cafile),
            certfile=_path(settings.kafka_ssl_certfile),
            keyfile=_path(settings.kafka_ssl_keyfile),
            password=settings.kafka_ssl_key_password or None,
        )
        return context
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"TACT_KAFKA_SSL_*: cannot load the TLS files: {exc}") from None


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_secret
    return options


def faust_credentials(settings: Settings) -> SASLCredentials | SSLCredentials | None:
    """The same, as Faust's broker_credentials (its consumer, producer and table clients)."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL"):
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_secret,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def _path(value: Any) -> str | None:
    return str(value) if value else None
