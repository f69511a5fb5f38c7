"""How the model artifact reaches the runtime: fetched into an emptyDir, mounted from a claim, or in the image."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.render.children import Owner, render_deployment
from modeldeploy.render.model import FETCH_CONTAINER, Platform, image_volumes_by_default, model_mount

OWNER = Owner("iris", "team", "uid-1")
PLATFORM = Platform(fetcher_image="registry.example/modeldeploy:9.9.9")
MOUNTED = {"name": "model", "mountPath": "/mnt/models/model", "readOnly": True}


def spec(**model: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {"model": {"name": "iris", "version": "2.0.0", **model}, "runtime": {"image": "registry.example/mlserver:1"}}
    )


def test_without_a_uri_the_model_is_in_the_image() -> None:
    mount = model_mount(spec(), PLATFORM)
    assert (mount.volumes, mount.init_containers, mount.mounts, mount.model_dir) == ([], [], [], None)


def test_an_absolute_path_is_a_model_in_the_image() -> None:
    mount = model_mount(spec(uri="/models/iris"), PLATFORM)
    assert (mount.volumes, mount.init_containers, mount.model_dir) == ([], [], "/models/iris")


def test_an_object_store_uri_is_fetched_by_the_operators_image_into_a_volume_the_runtime_reads_only() -> None:
    digest = "AB" * 32
    mount = model_mount(spec(uri="s3://models/iris/2.0.0", sha256=digest, credentials={"name": "s3-creds"}), PLATFORM)
    assert mount.volumes == [{"name": "model", "emptyDir": {}}]
    [fetcher] = mount.init_containers
    assert fetcher["name"] == FETCH_CONTAINER
    assert fetcher["image"] == "registry.example/modeldeploy:9.9.9"
    assert [*fetcher["command"], *fetcher["args"]] == [
        "modeldeploy",
        "fetch",
        "s3://models/iris/2.0.0",
        "/mnt/models",
        "--sha256",
        digest.lower(),
    ]
    assert fetcher["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]  # the kubelet reads the Secret
    assert fetcher["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert fetcher["volumeMounts"] == [{"name": "model", "mountPath": "/mnt/models"}]
    assert mount.mounts == [{"name": "model", "mountPath": "/mnt/models", "readOnly": True}]
    assert mount.model_dir == "/mnt/models/model"


def test_without_credentials_the_fetcher_gets_no_environment_from_a_secret() -> None:
    [fetcher] = model_mount(spec(uri="https://example.org/iris.onnx"), PLATFORM).init_containers
    assert "envFrom" not in fetcher
    assert "--sha256" not in fetcher["args"]


@pytest.mark.parametrize(
    ("uri", "mount"),
    [
        (
            "pvc://models/iris/2.0.0",
            {"name": "model", "mountPath": "/mnt/models/model", "readOnly": True, "subPath": "iris/2.0.0"},
        ),
        ("pvc://models", {"name": "model", "mountPath": "/mnt/models/model", "readOnly": True}),
    ],
)
def test_a_claim_is_mounted_read_only_without_a_copy(uri: str, mount: dict[str, Any]) -> None:
    rendered = model_mount(spec(uri=uri), PLATFORM)
    assert rendered.volumes == [{"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}]
    assert rendered.init_containers == []
    assert rendered.mounts == [mount]


def test_the_deployment_carries_the_pieces_and_the_runtime_its_model_dir() -> None:
    deployment = render_deployment(OWNER, spec(uri="gs://bucket/iris"), PLATFORM)
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == [FETCH_CONTAINER]
    assert pod["volumes"] == [{"name": "model", "emptyDir": {}}]
    [runtime] = pod["containers"]
    assert {"name": "MODEL_DIR", "value": "/mnt/models/model"} in runtime["env"]
    assert runtime["volumeMounts"] == [{"name": "model", "mountPath": "/mnt/models", "readOnly": True}]
    assert "initContainers" not in render_deployment(OWNER, spec(), PLATFORM)["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"uri": "s4://models/iris"}, "String should match pattern"),
        ({"uri": "models/iris"}, "String should match pattern"),
        ({"sha256": "ab" * 32}, "model.sha256 checks a fetched artifact"),
        ({"uri": "pvc://models/iris", "sha256": "ab" * 32}, "model.sha256 checks a fetched artifact"),
        ({"uri": "/models/iris", "credentials": {"name": "c"}}, "model.credentials are for the fetcher"),
        ({"uri": "oci://ghcr.io/org/iris:1", "sha256": "ab" * 32}, "model.sha256 checks a fetched artifact"),
        ({"uri": "oci://ghcr.io/org/iris:1", "credentials": {"name": "c"}}, "model.credentials are for the fetcher"),
        ({"uri": "s3://models/iris", "sha256": "xyz"}, "String should match pattern"),
    ],
)
def test_fetch_settings_that_cannot_work_are_refused(model: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**model)


MODELCAR = "oci://registry.example/team/iris-modelcar:2.0.0"


def test_a_modelcar_is_an_image_volume_the_runtime_reads_only() -> None:
    mount = model_mount(spec(uri=MODELCAR), PLATFORM)
    assert mount.volumes == [
        {
            "name": "model",
            "image": {"reference": "registry.example/team/iris-modelcar:2.0.0", "pullPolicy": "IfNotPresent"},
        }
    ]
    assert mount.init_containers == []
    assert mount.mounts == [{"name": "model", "mountPath": "/mnt/models", "readOnly": True}]
    assert mount.model_dir == "/mnt/models/models"  # the image's /models


def test_without_image_volumes_a_modelcar_is_copied_out_by_its_own_image_as_nobody() -> None:
    platform = Platform(fetcher_image="registry.example/modeldeploy:9.9.9", image_volumes=False)
    mount = model_mount(spec(uri=MODELCAR), platform)
    assert mount.volumes == [{"name": "model", "emptyDir": {}}]
    [copier] = mount.init_containers
    assert copier["name"] == "copy-model"
    assert copier["image"] == "registry.example/team/iris-modelcar:2.0.0"
    assert copier["command"] == ["cp", "-R", "/models", "/mnt/models/"]
    assert copier["securityContext"]["runAsUser"] == 65534
    assert copier["securityContext"]["runAsNonRoot"] is True
    assert mount.mounts == [{"name": "model", "mountPath": "/mnt/models", "readOnly": True}]
    assert mount.model_dir == "/mnt/models/models", "the runtime sees the same folder either way"


@pytest.mark.parametrize(
    ("version", "on"),
    [
        ({"major": "1", "minor": "35"}, True),
        ({"major": "1", "minor": "37"}, True),
        ({"major": "1", "minor": "35+"}, True),
        ({"major": "1", "minor": "34"}, False),
        ({"major": "1", "minor": "34+"}, False),
        ({"major": "2", "minor": "0"}, True),
        ({"major": "", "minor": ""}, False),
        ({}, False),
    ],
)
def test_image_volumes_are_used_from_kubernetes_1_35(version: dict[str, object], on: bool) -> None:
    assert image_volumes_by_default(version) is on
