"""How jobwire's Kafka clients connect, and what it means when they cannot.

`client_options` is the one place that turns `KafkaSettings` into aiokafka's connection
arguments (brokers, security protocol, SASL credentials, TLS context); every consumer, producer
and admin client jobwire makes is built with it.

When a client cannot start, aiokafka raises the same `KafkaConnectionError("Unable to bootstrap
from …")` whether the broker is down, refused the password or presented a certificate nobody
trusts; the cause is only in a line it logs. `explain_failure` finds the cause by connecting
once more, by itself, and says what to check in terms of the JOBWIRE_KAFKA__* variables.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Literal, TypedDict

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from config.settings import KafkaSettings

__all__ = ["ClientOptions", "ConnectionProblem", "client_options", "explain_failure"]

# Long enough for a broker across an ocean, short enough that a stop is not held up long.
PROBE_TIMEOUT_S = 5.0


class ClientOptions(TypedDict):
    """Keyword arguments of AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient."""

    bootstrap_servers: str
    security_protocol: str
    sasl_mechanism: str
    sasl_plain_username: str | None
    sasl_plain_password: str | None
    ssl_context: ssl.SSLContext | None


def client_options(settings: KafkaSettings) -> ClientOptions:
    """Where the brokers are and how to authenticate to them, for any aiokafka client.

    With the default settings (PLAINTEXT) these are aiokafka's own defaults.
    """
    sasl = settings.security_protocol.startswith("SASL_")
    password = settings.sasl_password
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        # Verifies the broker's certificate and that it names the host dialled.
        context = create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
        )
    return ClientOptions(
        bootstrap_servers=settings.bootstrap_servers,
        security_protocol=settings.security_protocol,
        sasl_mechanism=settings.sasl_mechanism,
        sasl_plain_username=settings.sasl_username if sasl else None,
        sasl_plain_password=password.get_secret_value() if sasl and password else None,
        ssl_context=context,
    )


ProblemKind = Literal["unreachable", "auth_failed", "tls_failed", "security_mismatch"]


@dataclass(frozen=True, slots=True)
class ConnectionProblem:
    """Why the brokers could not be used: a kind for the log event, what happened, what to do.

    None of it holds the password: broker and TLS errors do not carry it, and the hints name
    variables, not values.
    """

    kind: ProblemKind
    error: str
    hint: str

    def __str__(self) -> str:
        return f"{self.error}; {self.hint}"


UNREACHABLE_HINT = "check JOBWIRE_KAFKA__BOOTSTRAP_SERVERS and that the broker is up"


async def explain_failure(settings: KafkaSettings, failure: Exception) -> ConnectionProblem:
    """Why a client could not start with these settings, found by connecting once more.

    `failure` is what the client raised; it is the error shown when the broker was simply
    unreachable (or reachable again by the time of this probe).
    """
    problems: list[ConnectionProblem] = []
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            for host, port, _ in collect_hosts(settings.bootstrap_servers, randomize=False):
                problem = await _probe(settings, host, port)
                if problem is None:
                    break  # this broker answers now: the failure passed
                problems.append(problem)
    except TimeoutError:
        pass
    specific = [problem for problem in problems if problem.kind != "unreachable"]
    if specific:
        return specific[0]
    return ConnectionProblem("unreachable", str(failure), UNREACHABLE_HINT)


async def _probe(settings: KafkaSettings, host: str, port: int) -> ConnectionProblem | None:
    """Connect as aiokafka's bootstrap does (handshakes, then metadata); None if that works."""
    options = client_options(settings)
    where = f"{host}:{port}"
    try:
        conn = await create_conn(
            host,
            port,
            client_id="jobwire-probe",
            request_timeout_ms=PROBE_TIMEOUT_S * 1000,
            security_protocol=options["security_protocol"],
            sasl_mechanism=options["sasl_mechanism"],
            sasl_plain_username=options["sasl_plain_username"],
            sasl_plain_password=options["sasl_plain_password"],
            ssl_context=options["ssl_context"],
        )
        try:
            await conn.send(MetadataRequest([]))
        finally:
            conn.close()
    except Exception as exc:
        return _classify(settings, where, exc)
    return None


def _classify(settings: KafkaSettings, where: str, exc: Exception) -> ConnectionProblem:
    protocol = settings.security_protocol
    mechanism = settings.sasl_mechanism
    if isinstance(exc, SaslAuthenticationFailed):
        return ConnectionProblem(
            "auth_failed",
            f"{where} refused the SASL login: {exc}",
            "check JOBWIRE_KAFKA__SASL_USERNAME and JOBWIRE_KAFKA__SASL_PASSWORD, and that "
            f"JOBWIRE_KAFKA__SASL_MECHANISM ({mechanism}) is one the user was created for",
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return ConnectionProblem(
            "auth_failed",
            f"{where} does not accept SASL mechanism {mechanism}",
            "set JOBWIRE_KAFKA__SASL_MECHANISM to one the broker offers "
            "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; your provider's docs say which)",
        )
    tls_error = _tls_error(exc)
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        return ConnectionProblem(
            "tls_failed",
            f"the certificate of {where} is not trusted: {tls_error.verify_message}",
            "set JOBWIRE_KAFKA__SSL_CAFILE to the PEM file of the CA that signed the brokers' "
            "certificates (unset, the system's CAs are used), and use a host name in "
            "JOBWIRE_KAFKA__BOOTSTRAP_SERVERS that the certificate names",
        )
    if tls_error is not None:
        return ConnectionProblem(
            "tls_failed",
            f"the TLS handshake with {where} failed: {tls_error.reason or tls_error}",
            "if the broker asks for a client certificate, set JOBWIRE_KAFKA__SSL_CERTFILE and "
            "JOBWIRE_KAFKA__SSL_KEYFILE; if that port does not speak TLS, check "
            "JOBWIRE_KAFKA__SECURITY_PROTOCOL",
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionProblem("unreachable", f"{where}: {exc}", UNREACHABLE_HINT)
    if isinstance(exc, ConnectionError | KafkaConnectionError | IllegalSaslStateError):
        # A TCP connection was made, then the broker hung up on what jobwire said: the
        # listener at that port expects another protocol (TLS, SASL, or neither).
        return ConnectionProblem(
            "security_mismatch",
            f"{where} closed the connection when spoken to with {protocol}",
            "set JOBWIRE_KAFKA__SECURITY_PROTOCOL to what the broker's listener at that port "
            "expects (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)",
        )
    # No route, no such host, no answer in time: nothing of the security settings is known yet.
    return ConnectionProblem(
        "unreachable", f"{where}: {type(exc).__name__}: {exc}", UNREACHABLE_HINT
    )


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `exc` (aiokafka wraps some as a closed connection), if any."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain is two or three long; the bound only guards against a loop
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
