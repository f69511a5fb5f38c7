"""docs/operations.md and docs/kind.md stay in step with the code they describe."""

from __future__ import annotations

import re

import pytest
import yaml

from modeldeploy import metrics
from modeldeploy.rbac import CLUSTER_RUNTIMES, LEADER_ELECTION, PERMISSIONS, PULL_SECRET_CHECK, Permission
from modeldeploy.settings import OperatorSettings
from tests.chart import CHART_DIR, ROOT

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
KIND = (ROOT / "docs" / "kind.md").read_text()


def _exposed_names() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def test_every_metric_is_documented() -> None:
    documented = set(re.findall(r"`(modeldeploy_[a-z_]+)`", OPERATIONS))
    assert _exposed_names() <= documented, _exposed_names() - documented
    # and no documented metric name is invented
    assert {name for name in documented if not name.endswith(("_bucket", "_count", "_sum"))} <= _exposed_names()


def test_every_setting_is_documented() -> None:
    for field in OperatorSettings.model_fields:
        assert f"`MODELDEPLOY_{field.upper()}`" in OPERATIONS, field


@pytest.mark.parametrize(
    "permission",
    [*PERMISSIONS, CLUSTER_RUNTIMES, PULL_SECRET_CHECK, LEADER_ELECTION],
    ids=lambda p: f"{p.api_group}/{p.resource}",
)
def test_every_permission_is_in_the_rbac_table(permission: Permission) -> None:
    rows = [line for line in OPERATIONS.splitlines() if line.startswith("| `")]
    group = permission.api_group or '""'
    resource = permission.resource
    (row,) = [r for r in rows if f"| `{group}` | `{resource}` |" in r]
    verbs = row.split("|")[3].strip()
    assert [v.strip() for v in verbs.split(",")] == list(permission.verbs)


def test_kind_doc_uses_the_config_the_image_tag_and_the_chart() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    image = f"ghcr.io/modeldeploy/modeldeploy:{chart['appVersion']}"
    assert "kind create cluster --config kind-config.yaml" in KIND
    assert f"docker build -f operator/Dockerfile -t {image} ." in KIND
    assert f"kind load docker-image {image}" in KIND
    assert "helm install modeldeploy charts/modeldeploy" in KIND
    assert "examples/minimal.yaml" in KIND
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["nodes"][0]["image"].split(":")[1] in KIND
    assert f"--name {config['name']}" in KIND
