"""The farm's kubelet, its pure part: environment, arguments and paths as a kubelet would make them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox.kubelet import (
    KnownImage,
    container_argv,
    container_env,
    downward_files,
    expand,
    load_images,
    pod_local,
    rewrite_paths,
    runnable,
    sidecars,
)

Obj = dict[str, Any]
POD: Obj = {
    "metadata": {"name": "iris-abc", "namespace": "team", "uid": "u1"},
    "status": {"podIP": "127.51.0.7"},
}
MOUNTS = {"/mnt/models": Path("/tmp/farm/pods/u1/volumes/model")}


@pytest.mark.parametrize(
    ("value", "defined", "expanded"),
    [
        ("$(A)/x", {"A": "/a"}, "/a/x"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(A)", {"A": "/a"}, "$(A)"),
        ("$$$(A)", {"A": "1"}, "$1"),
        ("$(A)$(B)", {"A": "1", "B": "2"}, "12"),
        ("no reference", {"A": "1"}, "no reference"),
    ],
)
def test_references_expand_as_kubernetes_expands_them(value: str, defined: dict[str, str], expanded: str) -> None:
    assert expand(value, defined) == expanded


@pytest.mark.parametrize(
    ("value", "rewritten"),
    [
        ("/mnt/models/model", "/tmp/farm/pods/u1/volumes/model/model"),
        ("/mnt/models", "/tmp/farm/pods/u1/volumes/model"),
        ("/mnt/modelsx", "/mnt/modelsx"),
        ("relative/mnt/models", "relative/mnt/models"),
        ("--config-file=/mnt/models/c.json", "--config-file=/tmp/farm/pods/u1/volumes/model/c.json"),
        ("--config-file=/etc/c.json", "--config-file=/etc/c.json"),
        ("a=/mnt/models", "a=/mnt/models"),  # not a flag: a value that happens to hold '='
    ],
)
def test_paths_under_a_mount_move_to_the_volumes_folder(value: str, rewritten: str) -> None:
    assert rewrite_paths(value, MOUNTS) == rewritten


def test_the_environment_is_envfrom_then_env_in_order_with_references_and_fields() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "creds"}}],
        "env": [
            {"name": "MODEL_DIR", "value": "/mnt/models/model"},
            {"name": "URI", "value": "$(MODEL_DIR)"},
            {"name": "EARLY", "value": "$(LATE)"},
            {"name": "LATE", "value": "x"},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "AWS_ACCESS_KEY_ID"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "AWS_REGION", "value": "overridden"},
        ],
    }
    secrets = {"creds": {"AWS_ACCESS_KEY_ID": "id", "AWS_REGION": "eu"}}
    env = container_env(container, POD, secrets, MOUNTS)
    assert env == {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_REGION": "overridden",
        "MODEL_DIR": "/tmp/farm/pods/u1/volumes/model/model",
        "URI": "/tmp/farm/pods/u1/volumes/model/model",
        "EARLY": "$(LATE)",  # defined later: left as written, as the kubelet does
        "LATE": "x",
        "KEY": "id",
        "POD_IP": "127.51.0.7",
    }


IMAGE = KnownImage(entrypoint=("/entry",), cmd=("serve", "$(PORT)"), executables={"tool": "/opt/bin/tool"})


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        ({}, ["/entry", "serve", "8080"]),  # neither: ENTRYPOINT + CMD
        ({"args": ["--x"]}, ["/entry", "--x"]),  # args only: ENTRYPOINT + args
        (
            {"command": ["tool", "fetch"], "args": ["/mnt/models"]},
            ["/opt/bin/tool", "fetch", MOUNTS["/mnt/models"].as_posix()],
        ),
        ({"command": ["run"]}, ["run"]),  # command only: no CMD
    ],
)
def test_command_and_args_over_the_images_entrypoint_and_cmd(container: Obj, argv: list[str]) -> None:
    assert container_argv(container, IMAGE, {"PORT": "8080"}, MOUNTS) == argv


def test_a_pod_runs_for_real_only_when_every_image_and_volume_can_be_given() -> None:
    images = {"a:1": KnownImage(), "b:1": KnownImage()}
    pod: Obj = {"spec": {"initContainers": [{"image": "a:1"}], "containers": [{"image": "b:1"}]}}
    assert runnable(pod, images)
    assert not runnable({"spec": {"containers": [{"image": "c:1"}]}}, images)
    with_claim = {"spec": {**pod["spec"], "volumes": [{"name": "m", "persistentVolumeClaim": {"claimName": "x"}}]}}
    assert not runnable(with_claim, images)
    with_empty_dir = {"spec": {**pod["spec"], "volumes": [{"name": "m", "emptyDir": {}}]}}
    assert runnable(with_empty_dir, images)


def test_the_images_file_is_optional_and_a_broken_one_is_ignored(tmp_path: Path) -> None:
    assert load_images(tmp_path / "absent.json") == {}
    (tmp_path / "broken.json").write_text("{not json")
    assert load_images(tmp_path / "broken.json") == {}
    (tmp_path / "images.json").write_text('{"a:1": {"cmd": ["x"], "hostEnv": "HOST", "terminationLogArg": "--log"}}')
    assert load_images(tmp_path / "images.json") == {
        "a:1": KnownImage(cmd=("x",), host_env="HOST", termination_log_arg="--log")
    }


AUTHZ_POD: Obj = {
    "metadata": {
        "name": "iris-1",
        "namespace": "models",
        "annotations": {"modeldeploy.io/authz-config": '{"authorization": {}}'},
    },
    "status": {"podIP": "127.51.0.7"},
}


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        ("--upstream=http://127.0.0.1:8080/", "--upstream=http://127.51.0.7:8080/"),
        ("--secure-listen-address=0.0.0.0:8443", "--secure-listen-address=127.51.0.7:8443"),
        ("http://localhost:9000", "http://127.51.0.7:9000"),
        ("--bind=5127.0.0.1:80", "--bind=5127.0.0.1:80"),  # not an address: digits before it
        ("127.0.0.1", "127.0.0.1"),  # no port: not an address to listen on or dial
    ],
)
def test_a_pods_own_addresses_are_its_127_address(given: str, seen: str) -> None:
    assert pod_local(given, "127.51.0.7") == seen


def test_downward_api_files_show_annotations_and_fields() -> None:
    volume = {
        "name": "config",
        "downwardAPI": {
            "items": [
                {
                    "path": "config.json",
                    "fieldRef": {"fieldPath": "metadata.annotations['modeldeploy.io/authz-config']"},
                },
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            ]
        },
    }
    projected = {
        "name": "token",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token"}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]
        },
    }
    assert downward_files(volume, AUTHZ_POD) == {"config.json": '{"authorization": {}}', "name": "iris-1"}
    assert downward_files(projected, AUTHZ_POD) == {"namespace": "models"}


def test_sidecars_are_the_known_containers_that_are_not_the_model() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "model-server", "image": "known:1", "env": [{"name": "MODEL_NAME", "value": "iris"}]},
                {"name": "authz", "image": "known:1"},
                {"name": "other", "image": "unknown:1"},
            ]
        }
    }
    images = {"known:1": KnownImage()}
    assert [c["name"] for c in sidecars(pod, images)] == ["authz"]
