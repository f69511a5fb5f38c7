"""Fixtures shared by the integration and e2e suites: a real sandbox control plane.

The sandbox is started once per session (or reused when one already runs, which keeps the
edit-test loop fast), and each test gets a namespace of its own, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from modeldeploy.sandbox.cluster import Sandbox, kubectl_binary

ROOT = Path(__file__).resolve().parents[1]


class Kubectl(Protocol):
    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    instance = Sandbox()
    started_here = not instance.healthy()
    instance.up()
    yield instance
    if started_here and not os.environ.get("MODELDEPLOY_KEEP_SANDBOX"):
        instance.down()


def make_kubectl(kubeconfig: Path, namespace: str | None) -> Kubectl:
    def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [kubectl_binary(), f"--kubeconfig={kubeconfig}"]
        if namespace is not None:
            command.append(f"--namespace={namespace}")
        result = subprocess.run([*command, *args], input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result

    return kubectl


@pytest.fixture
def namespace(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    admin = make_kubectl(sandbox.kubeconfig, None)
    admin("create", "namespace", name)
    yield name
    admin("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubectl(sandbox: Sandbox, namespace: str) -> Kubectl:
    return make_kubectl(sandbox.kubeconfig, namespace)


@pytest.fixture(scope="session")
def admin_kubectl(sandbox: Sandbox) -> Kubectl:
    return make_kubectl(sandbox.kubeconfig, None)


__all__ = ["ROOT", "Kubectl", "make_kubectl"]
