"""Credentials for the sandbox control plane, made with the `cryptography` package.

(Not the system's openssl: `make test` needs nothing from the distribution's packages.)

The sandbox needs a serving certificate for kube-apiserver (clients verify it against a
CA we write into the kubeconfig), a key pair that signs ServiceAccount tokens, and an
admin credential. A static bearer token in `system:masters` is the admin credential:
it is the smallest thing that works for kubectl, the controllers and the tests alike.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    service_account_key: Path
    service_account_pub: Path
    token_file: Path
    admin_token: str


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None, *, ca: bool
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer if issuer is not None else (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default"),
                ]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def ensure_credentials(directory: Path) -> Credentials:
    """Create the credentials once; later calls return the same files."""
    directory.mkdir(parents=True, exist_ok=True)
    creds = Credentials(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "apiserver.crt",
        server_key=directory / "apiserver.key",
        service_account_key=directory / "sa.key",
        service_account_pub=directory / "sa.pub",
        token_file=directory / "tokens.csv",
        admin_token=_admin_token(directory / "tokens.csv"),
    )
    if not creds.ca_cert.exists():
        ca_key, server_key, sa_key = _key(), _key(), _key()
        ca = _certificate("modeldeploy-sandbox-ca", ca_key, None, ca=True)
        server = _certificate("kube-apiserver", server_key, (ca.subject, ca_key), ca=False)
        _write_key(directory / "ca.key", ca_key)
        _write_key(creds.server_key, server_key)
        _write_key(creds.service_account_key, sa_key)
        creds.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        creds.service_account_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        creds.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))  # last: it marks the set complete
    return creds


def _admin_token(token_file: Path) -> str:
    if token_file.exists():
        return token_file.read_text().split(",", 1)[0]
    token = secrets.token_hex(24)
    token_file.write_text(f'{token},sandbox-admin,sandbox-admin,"system:masters"\n')
    return token
