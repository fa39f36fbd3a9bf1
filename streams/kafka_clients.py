"""Kafka client options from settings, and topic creation.

kafka-python is used for producers and admin, aiokafka (faust's own client) for group consumers:
both take the same security options, built here once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import ssl
from typing import Any

from aiokafka import errors as aio_errors
from aiokafka.conn import create_conn
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from models.errors import ConfigError, PmaintError
from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for SSL/SASL_SSL, ``None`` for plaintext."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    try:
        ctx = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            ctx.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"Kafka TLS files: {exc}") from None
    return ctx


def check_tls(settings: Settings) -> None:
    """With TLS on, shake hands with the first bootstrap broker once before a client starts,
    so a wrong CA or host name is one clear ``PmaintError`` instead of clients retrying until
    they time out. Unreachable brokers are left to the clients to report."""
    ctx = ssl_context(settings)
    if ctx is None:
        return
    host, _, port = settings.bootstrap_servers()[0].rpartition(":")
    host = host.strip("[]")
    timeout = settings.kafka_connect_timeout_s
    try:
        with (
            socket.create_connection((host, int(port)), timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host),
        ):
            return
    except ssl.SSLError as exc:
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        cafile = settings.kafka_ssl_cafile or "the system CAs"
        raise PmaintError(
            f"Kafka at {host}:{port}: TLS handshake failed: {reason} (CA file: {cafile})"
        ) from None
    except (OSError, ValueError):
        return


def check_sasl(settings: Settings) -> None:
    """With SASL on, log in to the first bootstrap broker once before a client starts, so
    rejected credentials or a mechanism the broker lacks are one clear ``PmaintError`` instead
    of clients retrying (kafka-python) or raising ``KeyError: 'v'`` (aiokafka). Unreachable
    brokers are left to the clients to report."""
    if not settings.kafka_security_protocol.startswith("SASL"):
        return
    host, _, port = settings.bootstrap_servers()[0].rpartition(":")
    host = host.strip("[]")
    where = f"Kafka at {host}:{port}: SASL {settings.kafka_sasl_mechanism} login as"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # works inside a running loop too
        failure = pool.submit(asyncio.run, _sasl_login(settings, host, int(port))).result()
    if failure is not None:
        raise PmaintError(f"{where} {settings.kafka_sasl_username!r} failed: {failure}")


async def _sasl_login(settings: Settings, host: str, port: int) -> str | None:
    """Open and close one authenticated connection; why it was refused, or ``None``."""
    timeout_ms = round(settings.kafka_connect_timeout_s * 1000)
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=timeout_ms, **security_kwargs(settings)),
            settings.kafka_connect_timeout_s,
        )
    except KeyError:
        # the broker answered the SCRAM proof with an RFC 5802 server-error ("e=...") inside
        # a successful SaslAuthenticate response; aiokafka reads it as a missing "v" key
        return "the broker rejected the user name or password"
    except aio_errors.SaslAuthenticationFailed:
        return "the broker rejected the user name or password"
    except aio_errors.UnsupportedSaslMechanismError:
        return "the broker does not offer this mechanism"
    except aio_errors.KafkaConnectionError:
        # connected, then dropped: Tansu drops a handshake for a mechanism it lacks
        return "the broker closed the connection (does it offer this mechanism?)"
    except (aio_errors.KafkaError, OSError, TimeoutError, ValueError):
        return None
    conn.close()
    return None


def check_connection(settings: Settings) -> None:
    """The TLS and SASL checks a client runs before it starts."""
    check_tls(settings)
    check_sasl(settings)


def security_kwargs(settings: Settings) -> dict[str, Any]:
    """Security options shared by kafka-python and aiokafka clients."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    ctx = ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # checked by Settings
        kwargs |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return kwargs


def admin_client(settings: Settings) -> KafkaAdminClient:
    """A kafka-python admin client, or a ``PmaintError`` naming the unreachable brokers."""
    check_connection(settings)
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers(),
            request_timeout_ms=10_000,
            bootstrap_timeout_ms=round(settings.kafka_connect_timeout_s * 1000),
            **security_kwargs(settings),
        )
    except KafkaError as exc:
        raise PmaintError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from None


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create the pmaint topics if missing; return each topic's actual partition count."""
    topics = {
        settings.topic_telemetry: settings.partitions,
        settings.topic_dlq: settings.partitions,
        settings.topic_alerts: settings.partitions,
    }
    admin = admin_client(settings)
    try:
        missing = [
            NewTopic(name, n, settings.replication_factor)
            for name, n in topics.items()
            if name not in set(admin.list_topics())
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                admin.create_topics(missing)
        described = admin.describe_topics(list(topics))
        return {d["name"]: len(d["partitions"]) for d in described}
    finally:
        admin.close()
