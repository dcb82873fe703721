"""A throwaway certificate authority for the dev broker's TLS listeners.

Managed Kafka services present a certificate signed by a CA the client is told about
(``JOBWIRE_KAFKA__SSL_CAFILE``) and some (Aiven) ask the client for a certificate of its own.
`make_tls_material` writes both sides of that, for loopback only: a CA, the broker's key and
certificate in a PKCS#12 keystore (what Kafka reads), and a client key and certificate as PEM
(what aiokafka reads). EC P-256 keys: generating them takes milliseconds, not seconds.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsMaterial", "make_tls_material"]

_VALID_FOR = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsMaterial:
    """Files written by `make_tls_material`; the keystore passwords are for the broker only."""

    ca_file: Path
    """PEM: the CA certificate; a client trusts the broker through it."""
    broker_keystore: Path
    """PKCS#12: the broker's key and certificate (for 127.0.0.1 and localhost)."""
    broker_truststore: Path
    """PEM: the CA again, for the broker to check client certificates (mutual TLS)."""
    keystore_password: str
    client_cert: Path
    """PEM: a client certificate signed by the CA, for listeners that require one."""
    client_key: Path
    """PEM: its unencrypted private key."""


def make_tls_material(directory: Path, keystore_password: str) -> TlsMaterial:
    """Write a new CA, a broker certificate and a client certificate into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobwire devstack CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = (
        _builder(_cn("127.0.0.1"), ca_name, broker_key.public_key(), now)
        # Clients check the address they dialled against these (aiokafka always does).
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = (
        _builder(_cn("jobwire-client"), ca_name, client_key.public_key(), now)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    material = TlsMaterial(
        ca_file=directory / "ca.pem",
        broker_keystore=directory / "broker.p12",
        broker_truststore=directory / "broker-truststore.pem",
        keystore_password=keystore_password,
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    material.ca_file.write_bytes(ca_pem)
    material.broker_truststore.write_bytes(ca_pem)
    material.broker_keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"broker",
            broker_key,
            broker_cert,
            [ca_cert],
            serialization.BestAvailableEncryption(keystore_password.encode()),
        )
    )
    material.client_cert.write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    material.client_key.write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    material.client_key.chmod(0o600)
    return material


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # An hour back: a clock a little behind must not see a certificate from the future.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALID_FOR)
    )
