"""Fixtures for the fault suite: break one thing, then prove nothing was lost or leaked.

Every scenario runs against the same sandbox as the integration suite, with operators of its
own (started and killed here, never a module-wide one). Whatever a test stops, the control
plane or the operator's connection, is brought back at teardown even when the test fails, so
one failing scenario does not take the next ones with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox.cluster import COMPONENTS, Sandbox
from tests.conftest import OperatorProcess, start_operator, stop_operator
from tests.faults.meters import RECOVERIES, AuditLog, operator_source
from tests.faults.proxy import CuttableProxy, kubeconfig_through, upstream_of


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RECOVERIES:
        source = operator_source().get("PYTHONPATH")
        terminalreporter.section(f"fault recoveries (operator from {source or 'this tree'})")
        for name, seconds in RECOVERIES:
            terminalreporter.write_line(f"recovery: {name} {seconds:.1f}s")


@pytest.fixture(scope="session")
def audit(sandbox: Sandbox) -> AuditLog:
    log = AuditLog(sandbox.audit_log())
    if not log.path.exists():
        pytest.fail(
            f"{log.path} is missing: this sandbox predates its audit log; "
            "recreate it (`modeldeploy-dev sandbox down && modeldeploy-dev sandbox up`)"
        )
    return log


@pytest.fixture
def operators(tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators on demand (`operators(kubeconfig, "name")`); every one is stopped afterwards."""
    started: list[OperatorProcess] = []

    def start(kubeconfig: Path, name: str = "operator", **env: str) -> OperatorProcess:
        running = start_operator(kubeconfig, tmp_path / f"{name}.log", extra_env={**operator_source(), **env})
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            stop_operator(running)


# ---- the control plane and the proxy --------------------------------------------------------------


@pytest.fixture
def control_plane(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, for a test that stops components: whatever it left stopped is started again."""
    yield sandbox
    running = sandbox.running()
    for name in COMPONENTS:
        if not running.get(name, False):
            sandbox.start_component(name)


@pytest.fixture
def proxy(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[CuttableProxy, Path]]:
    """A cuttable proxy to the apiserver and a kubeconfig through it, for the operator only."""
    instance = CuttableProxy(*upstream_of(sandbox.kubeconfig))
    instance.start()
    try:
        yield instance, kubeconfig_through(sandbox.kubeconfig, instance, tmp_path / "through-proxy.kubeconfig")
    finally:
        instance.close()
