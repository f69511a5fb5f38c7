"""Fixtures for the image suite: the built image (`make image`), run by podman as the operator.

The container runs as the chart's pod does: UID 10001, a read-only root filesystem with a tmpfs
on /tmp only, no capabilities, no privilege escalation, and a kubeconfig (mounted read-only) that
holds a token of the chart's ServiceAccount. It shares the host's network, so it reaches the
sandbox's apiserver on 127.0.0.1 and the replica farm's pods on their 127.x addresses, and the
test reaches its liveness endpoint on 127.0.0.1.

podman and the image are required: when either is missing the tests fail, naming what to do.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chart import service_account_kubeconfig
from tests.conftest import OperatorProcess, free_port, stop_operator, wait_for

DEFAULT_IMAGE = "localhost/modeldeploy:dev"
KUBECONFIG_IN_CONTAINER = "/etc/modeldeploy/kubeconfig"
INSTALL_HINT = "apt-get install --no-install-recommends buildah podman runc debootstrap"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Podman:
    binary: str
    # crun 1.8 (Debian 12) refuses a hybrid cgroup v1/v2 hierarchy; runc runs on it (see Makefile).
    runtime: str

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [self.binary, f"--runtime={self.runtime}", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result


@pytest.fixture(scope="session")
def podman() -> Podman:
    found = shutil.which("podman")
    if found is None:
        pytest.fail(f"podman not found: the image suite runs the image with podman ({INSTALL_HINT})", pytrace=False)
    runtime = os.environ.get("MODELDEPLOY_OCI_RUNTIME", "runc")
    if shutil.which(runtime) is None:
        pytest.fail(f"OCI runtime {runtime!r} not found ({INSTALL_HINT})", pytrace=False)
    return Podman(found, runtime)


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    name = os.environ.get("MODELDEPLOY_IMAGE", DEFAULT_IMAGE)
    if podman("image", "exists", name, check=False).returncode != 0:
        pytest.fail(f"image {name} not found: build it with `make image` (`make image-test` does)", pytrace=False)
    return name


def resource_limits() -> list[str]:
    """Open files and processes within this process's own hard limits.

    Without --ulimit, podman gives a root container nofile and nproc of 1048576, and raising a
    hard limit needs CAP_SYS_RESOURCE, which root does not have on every machine (this one's
    sandbox lacks it): the runtime then fails with `setrlimit ... operation not permitted`.
    podman also lowers its own nproc to 32768, so the container's stays below that.
    """
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
    return [f"--ulimit=nofile={nofile}:{nofile}", "--ulimit=nproc=4096:4096"]


def container_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """The ServiceAccount kubeconfig with the CA inlined: one read-only file is all the container gets.

    Readable by the container's UID 10001 (mode 0644); pytest's temporary directory above it is
    private to root.
    """
    service_account_kubeconfig(admin_kubeconfig, token, path)
    config = json.loads(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = Path(cluster.pop("certificate-authority")).read_bytes()
    cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o644)
    return path


@dataclass
class ContainerOperator:
    """`modeldeploy run` in the image, in a foreground `podman run` (its output is the log)."""

    name: str
    operator: OperatorProcess
    health_url: str
    podman: Podman

    def exec(self, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        as_user = [f"--user={user}"] if user is not None else []
        return self.podman("exec", *as_user, self.name, *command, check=False)

    def inspect(self, template: str) -> str:
        return self.podman("inspect", "--type=container", f"--format={template}", self.name).stdout.strip()


StartContainerOperator = Callable[[Path, Mapping[str, str]], ContainerOperator]


def locked_down_run(podman: Podman, name: str) -> list[str]:
    """`podman run` as the chart runs its pod: readOnlyRootFilesystem, an emptyDir on /tmp and
    nothing else writable, no capabilities, no privilege gain, on the host's loopback."""
    return [
        podman.binary,
        f"--runtime={podman.runtime}",
        "run",
        "--rm",
        f"--name={name}",
        "--network=host",
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs=/tmp:rw,nosuid,nodev,size=64m",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        *resource_limits(),
    ]


@pytest.fixture
def container_operator(podman: Podman, image: str, tmp_path: Path) -> Iterator[StartContainerOperator]:
    """Start the image as the operator with a kubeconfig and settings; stopped (and removed) afterwards."""
    started: list[ContainerOperator] = []

    def start(kubeconfig: Path, env: Mapping[str, str]) -> ContainerOperator:
        name = f"modeldeploy-image-test-{uuid.uuid4().hex[:8]}"
        metrics_port, health_port = free_port(), free_port()
        log_path = tmp_path / f"{name}.log"
        command = [
            *locked_down_run(podman, name),
            "--user=10001:10001",
            f"--volume={kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
            *(f"--env={key}={value}" for key, value in env.items()),
            image,
            "run",
            f"--kubeconfig={KUBECONFIG_IN_CONTAINER}",
            f"--metrics-port={metrics_port}",
            f"--health-port={health_port}",
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        running = ContainerOperator(
            name,
            OperatorProcess(process, f"http://127.0.0.1:{metrics_port}/metrics", log_path),
            f"http://127.0.0.1:{health_port}/healthz",
            podman,
        )
        started.append(running)

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the operator container exited ({process.returncode}):\n{running.operator.log()}")
            return _answers_200(running.health_url)

        wait_for(healthy, timeout=START_TIMEOUT, interval=0.5, what="the containerized operator's /healthz")
        return running

    yield start
    for running in started:
        # SIGTERM to `podman run`, which passes it on to the operator (PID 1 in the container)
        stop_operator(running.operator)
        podman("rm", "--force", "--ignore", running.name, check=False)


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
