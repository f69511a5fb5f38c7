"""A modelcar (oci://) on a cluster without image volumes: copied out of its image by an init container.

Its own module: it runs an operator with MODELDEPLOY_IMAGE_VOLUMES=off, and no other operator
may be alive to fight it over the same objects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.conftest import Kubectl, OperatorProcess, model_deployment, start_operator, stop_operator, wait_for
from tests.integration.test_model_artifacts import MODELCAR, _deployment_applies, _pod_spec, _ready

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def copying_operator(
    sandbox: Sandbox, crd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    running = start_operator(
        sandbox.kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        extra_env={"MODELDEPLOY_IMAGE_VOLUMES": "off"},
    )
    yield running
    stop_operator(running)


def test_without_image_volumes_a_modelcar_is_copied_out_by_an_init_container(
    kubectl: Kubectl, copying_operator: OperatorProcess
) -> None:
    model = {"name": "iris", "version": "2.0.0", "uri": f"oci://{MODELCAR}"}
    kubectl("apply", "-f", "-", input=json.dumps(model_deployment(model=model)))
    wait_for(lambda: _ready(kubectl), timeout=90, what="Ready")
    pod = _pod_spec(kubectl)
    [copier] = pod["initContainers"]  # type: ignore[misc]
    assert (copier["name"], copier["image"]) == ("copy-model", MODELCAR)
    assert pod["volumes"] == [{"name": "model", "emptyDir": {}}]
    applied = _deployment_applies(copying_operator)
    time.sleep(6)  # more than one resync: what the apiserver defaulted into the init container is no drift
    assert _deployment_applies(copying_operator) == applied
