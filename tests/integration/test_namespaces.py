"""An operator told to serve many namespaces: one set of watches each, and still room to write."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.chart import scratch_namespace
from tests.conftest import Kubectl, make_kubectl, model_deployment, start_operator, stop_operator

pytestmark = pytest.mark.integration  # its own operator

NAMESPACES = 8  # 5 watches each: 40 long-lived streams, twice what the request pool once held in all


def test_an_operator_serving_eight_namespaces_makes_a_model_ready_in_the_last_one(
    sandbox: Sandbox, crd: Path, admin_kubectl: Kubectl, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as namespaces:
        names = [namespaces.enter_context(scratch_namespace(admin_kubectl, f"t-many-{i}")) for i in range(NAMESPACES)]
        log = tmp_path / "operator.log"
        operator = start_operator(sandbox.kubeconfig, log, {"MODELDEPLOY_NAMESPACES": ",".join(names)})
        try:
            for name in (names[0], names[-1]):
                kubectl = make_kubectl(sandbox.kubeconfig, name)
                kubectl("apply", "-f", "-", input=json.dumps(model_deployment("iris", replicas=1)))
            for name in (names[0], names[-1]):
                waited = make_kubectl(sandbox.kubeconfig, name)(
                    "wait", "--for=condition=Ready", "md/iris", "--timeout=60s", check=False
                )
                assert waited.returncode == 0, f"{name}: {waited.stderr}\n{log.read_text()[-3000:]}"
        finally:
            stop_operator(operator)
    problems = [line for line in log.read_text().splitlines() if "WARNING" in line or "ERROR" in line]
    assert not problems, problems[:5]
