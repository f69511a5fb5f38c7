"""Credentials for the sandbox control plane, made with the system's openssl.

The sandbox needs a serving certificate for kube-apiserver (clients verify it against a
CA we write into the kubeconfig), a key pair that signs ServiceAccount tokens, and an
admin credential. A static bearer token in `system:masters` is the admin credential:
it is the smallest thing that works for kubectl, the controllers and the tests alike.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    service_account_key: Path
    service_account_pub: Path
    token_file: Path
    admin_token: str


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


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
        ca_key = directory / "ca.key"
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(ca_key),
            "-out",
            str(creds.ca_cert),
            "-days",
            "365",
            "-subj",
            "/CN=modeldeploy-sandbox-ca",
        )
        csr = directory / "apiserver.csr"
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(creds.server_key),
            "-out",
            str(csr),
            "-subj",
            "/CN=kube-apiserver",
        )
        ext = directory / "apiserver.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(creds.ca_cert),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(creds.server_cert),
            "-days",
            "365",
            "-extfile",
            str(ext),
        )
        _openssl("genrsa", "-out", str(creds.service_account_key), "2048")
        _openssl("rsa", "-in", str(creds.service_account_key), "-pubout", "-out", str(creds.service_account_pub))
    return creds


def _admin_token(token_file: Path) -> str:
    if token_file.exists():
        return token_file.read_text().split(",", 1)[0]
    token = secrets.token_hex(24)
    token_file.write_text(f'{token},sandbox-admin,sandbox-admin,"system:masters"\n')
    return token
