"""A real S3-compatible server on loopback: moto's server mode, in a venv of its own (sidevenv.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from obstore.store import S3Store

from modeldeploy_dev.sidevenv import ROOT, SideVenv, ensure_venv

MOTO_VERSION = "5.2.5"
START_TIMEOUT = 30.0
HOST = "127.0.0.1"
REGION = "us-east-1"


def moto_venv() -> SideVenv:
    path = Path(os.environ.get("MODELDEPLOY_MOTO_VENV") or ROOT / ".venv-moto").resolve()
    return ensure_venv(path, {"moto": MOTO_VERSION}, "moto", extras={"moto": "server"})


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def create_bucket(self, bucket: str) -> None:
        httpx.put(f"{self.endpoint}/{bucket}").raise_for_status()  # moto takes it unsigned

    def store(self, bucket: str) -> S3Store:
        """A client of this server for the tests' own uploads (the fetcher reads `env()` instead)."""
        env = self.env()
        return S3Store(
            bucket,
            config={
                "endpoint": self.endpoint,
                "region": REGION,
                "access_key_id": env["AWS_ACCESS_KEY_ID"],
                "secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            },
            client_options={"allow_http": True},
        )

    def env(self) -> dict[str, str]:
        """What a Secret would give the fetch container (envFrom) to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "modeldeploy-test",
            "AWS_SECRET_ACCESS_KEY": "modeldeploy-test-secret",
            "AWS_REGION": REGION,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_s3_server(venv: SideVenv, log: Path, *, detach: bool = False) -> tuple[S3Server, subprocess.Popen[bytes]]:
    """moto_server on a free loopback port, answering; `detach` lets it outlive this process (the demo's)."""
    port = _free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(venv.bin("moto_server")), "-H", HOST, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
    endpoint = f"http://{HOST}:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
            return S3Server(endpoint), process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


@contextmanager
def s3_server(venv: SideVenv, log: Path) -> Iterator[S3Server]:
    server, process = start_s3_server(venv, log)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
