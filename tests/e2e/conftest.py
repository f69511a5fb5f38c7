"""A real third-party runtime for the e2e suite: MLServer, in a virtualenv of its own.

The venv and the model training live in the dev tooling (modeldeploy_dev.mlserver), shared
with `make demo`. Each server gets a model folder trained at test time and a `settings.json`
binding HTTP, gRPC and metrics to one loopback address: nothing listens beyond 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from modeldeploy_dev.mlserver import MLSERVER_VERSION, ensure_mlserver_venv, train_iris
from modeldeploy_dev.sidevenv import SideVenv

# MLServer imports sklearn, starts three servers and loads the model: 5-20 s on 2 cores.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
# The replica farm lets go of a pod's address when it sees the pod's annotation change.
RELEASE_TIMEOUT = 30.0

MLServerVenv = SideVenv


@pytest.fixture(scope="session")
def mlserver_venv() -> MLServerVenv:
    venv = ensure_mlserver_venv()
    if venv.install_seconds is not None:
        print(f"\ninstalled MLServer {MLSERVER_VERSION} into {venv.path} in {venv.install_seconds:.1f}s")
    return venv


# ---- one MLServer process ------------------------------------------------------------------------


def free_port_on(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether a listener could bind host:port now (SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until_free(host: str, ports: list[int], timeout: float = RELEASE_TIMEOUT, hint: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        busy = [p for p in ports if not port_is_free(host, p)]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{host} ports {busy} still in use after {timeout:.0f}s{hint}")
        time.sleep(0.25)


@dataclass(frozen=True)
class ModelFolder:
    """An MLServer model repository: settings.json at the root, the model in `<root>/<name>/`."""

    root: Path
    name: str
    version: str | None


def make_model_folder(
    venv: MLServerVenv,
    root: Path,
    *,
    name: str = "iris",
    version: str | None = "1.0.0",
    dependency_versions: list[str] | None = None,
) -> ModelFolder:
    """Train the iris model with MLServer's own scikit-learn and describe it in model-settings.json.

    `version=None` leaves parameters.version out (an unversioned model);
    `dependency_versions` fills model-settings' `versions`, which MLServer documents as the
    versions of the libraries the model was trained with (e.g. "sklearn/1.9.1").
    """
    train_iris(venv, root / name, name=name, version=version, dependency_versions=dependency_versions)
    return ModelFolder(root, name, version)


@dataclass
class MLServerProcess:
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    folder: ModelFolder
    process: subprocess.Popen[bytes]
    log_path: Path
    started_in: float = 0.0
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to MLServer's own process group (it was started in a session of its own)."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)


def start_mlserver(
    venv: MLServerVenv,
    folder: ModelFolder,
    *,
    host: str,
    http_port: int,
    metrics_port: int,
    grpc_port: int | None = None,
    timeout: float = START_TIMEOUT,
) -> MLServerProcess:
    """`mlserver start <folder>` bound to host only; returns once /v2/health/ready answers 200."""
    if not host.startswith("127."):
        raise ValueError(f"MLServer is only ever bound to loopback here, not {host}")
    grpc_port = free_port_on(host) if grpc_port is None else grpc_port
    settings = {
        "host": host,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        # In-process inference: no worker pool, one process to start and stop (2 cores).
        "parallel_workers": 0,
        "metrics_dir": str(folder.root / ".metrics"),
        # Access log on: it shows which requests reached MLServer.
        "debug": True,
        "load_models_at_startup": True,
    }
    (folder.root / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    log_path = folder.root / "mlserver.log"
    # Only our settings.json configures it: no MLSERVER_* variable or proxy from the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER") and "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(venv.bin("mlserver")), "start", str(folder.root)],
            cwd=folder.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = MLServerProcess(host, http_port, grpc_port, metrics_port, folder, process, log_path)
    deadline = started + timeout
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"mlserver exited with {process.returncode}:\n{server.log()[-4000:]}")
            try:
                if client.get(f"{server.url}/v2/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"mlserver not ready after {timeout:.0f}s:\n{server.log()[-4000:]}")
            time.sleep(0.25)
    server.started_in = time.monotonic() - started
    return server


class MLServers:
    """Starts MLServer processes for one test (or module) and stops every one afterwards."""

    def __init__(self, venv: MLServerVenv, base: Path) -> None:
        self.venv = venv
        self.base = base
        self.running: list[MLServerProcess] = []

    def model(
        self,
        label: str,
        *,
        name: str = "iris",
        version: str | None = "1.0.0",
        dependency_versions: list[str] | None = None,
    ) -> ModelFolder:
        return make_model_folder(
            self.venv, self.base / label, name=name, version=version, dependency_versions=dependency_versions
        )

    def start(
        self, folder: ModelFolder, *, host: str, http_port: int, metrics_port: int, grpc_port: int | None = None
    ) -> MLServerProcess:
        server = start_mlserver(
            self.venv, folder, host=host, http_port=http_port, metrics_port=metrics_port, grpc_port=grpc_port
        )
        self.running.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.running:
            server.stop()


@pytest.fixture
def mlservers(mlserver_venv: MLServerVenv, tmp_path: Path) -> Iterator[MLServers]:
    servers = MLServers(mlserver_venv, tmp_path)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def module_mlservers(mlserver_venv: MLServerVenv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServers]:
    servers = MLServers(mlserver_venv, tmp_path_factory.mktemp("mlserver"))
    yield servers
    servers.stop_all()
