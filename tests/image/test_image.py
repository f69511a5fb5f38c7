"""The built image (`make image`) runs as the operator and takes a ModelDeployment to Ready.

The chart is installed (namespaced RBAC for one watched namespace, without its CRD: the shared
one is the `crd` fixture's); the image then runs under podman the way the chart's pod is
specified (UID 10001, read-only root filesystem, /tmp the only writable path, no capabilities)
with a token of the chart's ServiceAccount. A ModelDeployment must reach Ready=True with its
replicas probed through the replica farm, every write the operator made (applies of the
children, status patches; the apiserver's audit log) must carry that ServiceAccount, and the
operator's log must show no refused request.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_dev.sandbox.cluster import Sandbox
from tests.chart import CHART_DIR, assert_no_other_operator, forbidden_lines, get, helm, scratch_namespace, unique
from tests.conftest import Kubectl, free_port, make_kubectl, model_deployment, wait_for
from tests.faults.meters import WRITE_VERBS, AuditLog
from tests.image.conftest import (
    ContainerOperator,
    Podman,
    StartContainerOperator,
    container_kubeconfig,
    locked_down_run,
)

pytestmark = pytest.mark.integration

UID = "10001"
READY_TIMEOUT = "120s"


@pytest.fixture
def watched(admin_kubectl: Kubectl) -> Iterator[str]:
    """The namespace the containerized operator serves; the chart is released into `namespace`."""
    with scratch_namespace(admin_kubectl, "t-image-models") as name:
        yield name


@pytest.fixture
def chart_release(sandbox: Sandbox, namespace: str, watched: str, image: str) -> Iterator[dict[str, Any]]:
    """The chart installed for `watched`; yields its operator Deployment (as rendered into the cluster)."""
    release = unique("img")
    repository, _, tag = image.rpartition(":")
    helm(
        "install",
        release,
        str(CHART_DIR),
        f"--namespace={namespace}",
        "--set=crd.install=false",
        "--set=rbac.scope=namespaced",
        f"--set=watchNamespaces={{{watched}}}",
        f"--set=image.repository={repository}",
        f"--set=image.tag={tag}",
        kubeconfig=sandbox.kubeconfig,
    )
    admin = make_kubectl(sandbox.kubeconfig, namespace)
    yield get(admin, "deployment", "-l", f"app.kubernetes.io/instance={release}")["items"][0]
    helm("uninstall", release, f"--namespace={namespace}", "--wait", kubeconfig=sandbox.kubeconfig, check=False)


def proc_status_ids(status: str) -> dict[str, list[str]]:
    """The Uid and Gid lines of /proc/<pid>/status: real, effective, saved, filesystem."""
    ids = {}
    for line in status.splitlines():
        key, _, values = line.partition(":")
        if key in ("Uid", "Gid"):
            ids[key] = values.split()
    return ids


@pytest.mark.usefixtures("crd")
def test_the_image_runs_the_operator_read_only_as_uid_10001_and_makes_a_model_ready(
    sandbox: Sandbox,
    namespace: str,
    watched: str,
    chart_release: dict[str, Any],
    container_operator: StartContainerOperator,
    tmp_path: Path,
) -> None:
    admin = make_kubectl(sandbox.kubeconfig, namespace)
    models = make_kubectl(sandbox.kubeconfig, watched)
    pod = chart_release["spec"]["template"]["spec"]
    account = pod["serviceAccountName"]
    chart_env = {item["name"]: item["value"] for item in pod["containers"][0]["env"] if "value" in item}
    assert pod["containers"][0]["image"].startswith("localhost/")
    token = admin("create", "token", account, "--duration=1h").stdout.strip()
    kubeconfig = container_kubeconfig(sandbox.kubeconfig, token, tmp_path / "kubeconfig")
    assert_no_other_operator(models, watched)
    audit_log = sandbox.audit_log()
    mark = audit_log.stat().st_size

    # the chart's settings, but loopback-only listeners and the test suite's short resync
    env = {
        **chart_env,
        "MODELDEPLOY_NAMESPACES": watched,
        "MODELDEPLOY_RESYNC_SECONDS": "5",
        "MODELDEPLOY_METRICS_HOST": "127.0.0.1",
        "MODELDEPLOY_HEALTH_HOST": "127.0.0.1",
    }
    running: ContainerOperator = container_operator(kubeconfig, env)

    # PID 1 of the container is the operator, running as 10001:10001 (real, effective, saved, fs)
    status = running.exec("cat", "/proc/1/status")
    assert status.returncode == 0, status.stderr
    assert proc_status_ids(status.stdout) == {"Uid": [UID] * 4, "Gid": [UID] * 4}
    cmdline = running.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert cmdline[1:3] == ["/usr/local/bin/modeldeploy", "run"], cmdline
    assert running.exec("id", "-u").stdout.strip() == UID

    # the root filesystem is read-only, even for root; /tmp (the tmpfs) is the one writable place
    assert running.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    for path in ("/probe", "/usr/local/lib/python3.11/dist-packages/probe", "/etc/probe"):
        refused = running.exec("touch", path, user="0")
        assert refused.returncode != 0, (path, refused)
        assert "Read-only file system" in refused.stderr, (path, refused)
    assert running.exec("touch", "/tmp/probe").returncode == 0
    root_mount = [line.split() for line in running.exec("cat", "/proc/mounts").stdout.splitlines()]
    assert any(fields[1] == "/" and "ro" in fields[3].split(",") for fields in root_mount), root_mount

    # a ModelDeployment with probes on: Ready only once every replica answered the operator's probes
    body = model_deployment("iris", replicas=2)
    del body["spec"]["probing"]
    models("apply", "-f", "-", input=json.dumps(body))
    waited = models("wait", "--for=condition=Ready", "md/iris", f"--timeout={READY_TIMEOUT}", check=False)
    assert waited.returncode == 0, f"{waited.stderr}\n--- operator log ---\n{running.operator.log()[-4000:]}"
    md = get(models, "md", "iris")
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    # Ready only once every replica answered the operator's probes, sent from inside the container
    # to their 127.x IPs (a Ready=True with one pod still Pending in the operator's cache, 1/1, was
    # seen here once; Ready now waits for as many probed replicas as the Deployment calls ready)
    assert (md["status"].get("health") or {}).get("summary") == "2/2", md["status"]

    uid = md["metadata"]["uid"]
    for kind in ("deployment", "service"):
        child = get(models, kind, "iris", "--show-managed-fields")
        assert [ref["uid"] for ref in child["metadata"]["ownerReferences"]] == [uid]
        managers = {(e["manager"], e["operation"]) for e in child["metadata"]["managedFields"]}
        assert ("modeldeploy", "Apply") in managers, managers

    # the operator's writes (applies of the children, status patches) carry the chart's
    # ServiceAccount, whose only token is the one mounted into the container
    user = f"system:serviceaccount:{namespace}:{account}"
    ours = [
        entry
        for entry in AuditLog(audit_log).since(mark)
        if entry.namespace == watched and entry.verb in WRITE_VERBS and entry.by_operator
    ]
    assert {w.what for w in ours} >= {"patch deployments", "patch services", "patch modeldeployments/status"}, ours
    assert {w.user for w in ours} == {user}, ours

    log = running.operator.log()
    assert f"starting for {watched}" in log, log[-3000:]
    assert forbidden_lines(log) == [], "\n".join(forbidden_lines(log))
    assert "Traceback (most recent call last)" not in log, log[-3000:]
    assert running.operator.process.poll() is None, "the operator container exited"


def test_the_same_image_serves_the_reference_model(podman: Podman, image: str) -> None:
    """`python -m modeldeploy.modelserver` (the command README's example runs) works in the image."""
    port = free_port()
    name = unique("modeldeploy-image-modelserver")
    command = [
        *locked_down_run(podman, name),
        "--env=MODELSERVER_HOST=127.0.0.1",
        f"--env=PORT={port}",
        "--env=MODEL_VERSION=1.0.0",
        "--entrypoint=python",
        image,
        "-m",
        "modeldeploy.modelserver",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:

        def ready() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"the model server exited: {server.stdout.read() if server.stdout else ''!r}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/iris/ready", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(ready, timeout=60, interval=0.5, what="the model server in the image")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/iris", timeout=5) as response:
            assert json.loads(response.read())["versions"] == ["1.0.0"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        podman("rm", "--force", "--ignore", name, check=False)


# Run inside the image: what it holds of modeldeploy, and of the development tooling (nothing).
IMAGE_CONTENTS = """
import importlib.metadata, importlib.util, json, pathlib, shutil, sys
import modeldeploy
def installed(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
roots = {pathlib.Path(p) for p in sys.path if p and pathlib.Path(p).is_dir()}
print(json.dumps({
    "modeldeploy": modeldeploy.__file__,
    "operator_version": installed("modeldeploy"),
    "dev_version": installed("modeldeploy-dev"),
    "dev_spec": importlib.util.find_spec("modeldeploy_dev") is not None,
    "sandbox_spec": importlib.util.find_spec("modeldeploy.sandbox") is not None,
    "scripts": [s for s in ("modeldeploy-dev", "go", "kwok", "etcd", "kube-apiserver") if shutil.which(s)],
    "go_sources": sorted(str(p) for r in roots for p in r.rglob("*") if p.suffix == ".go" or p.name == "go.mod"),
    "dev_files": sorted(
        str(p) for r in roots for p in r.rglob("modeldeploy*/**/*")
        if p.name in ("demo.py", "multi.py", "farm.py", "kwok-stages.yaml") or p.parent.name == "sandbox"
    ),
}))
"""


def test_the_image_holds_the_operator_and_none_of_the_development_tooling(podman: Podman, image: str) -> None:
    """Only the operator wheel is installed: no `modeldeploy_dev`, no sandbox, no Go build code."""
    command = [*locked_down_run(podman, unique("modeldeploy-image-contents")), "--entrypoint=python", image]
    result = subprocess.run([*command, "-c", IMAGE_CONTENTS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["operator_version"] is not None
    # the installed wheel (Debian's python: dist-packages), not a source tree
    assert found["modeldeploy"].endswith("-packages/modeldeploy/__init__.py")
    assert found["dev_version"] is None
    assert not found["dev_spec"]
    assert not found["sandbox_spec"]
    assert found["scripts"] == []
    assert found["go_sources"] == []
    assert found["dev_files"] == []


def test_the_same_image_fetches_a_model_as_the_init_container_runs(podman: Podman, image: str, tmp_path: Path) -> None:
    """`modeldeploy fetch` locked down as the chart's pods run (UID 10001, read-only root, no
    capabilities), the emptyDir and /dev/termination-log mounted as the kubelet mounts them, the
    S3 endpoint and keys in the environment as envFrom gives them: a real S3 server (moto)."""
    import hashlib
    import os

    import obstore

    from modeldeploy_dev.s3 import moto_venv, s3_server

    artifact = os.urandom(2_000_000)
    with s3_server(moto_venv(), tmp_path / "moto.log") as server:
        env = server.env()
        server.create_bucket("models")
        obstore.put(server.store("models"), "iris/2.0.0/model.joblib", artifact)

        def fetch(uri: str, volume: Path, log: Path) -> subprocess.CompletedProcess[str]:
            volume.mkdir(mode=0o777)
            volume.chmod(0o777)  # an emptyDir is world-writable; the image runs as 10001
            log.touch()
            log.chmod(0o666)
            command = [
                *locked_down_run(podman, unique("modeldeploy-image-fetch")),
                f"--volume={volume}:/mnt/models",
                f"--volume={log}:/dev/termination-log",
                *(f"--env={key}={value}" for key, value in env.items()),
                image,
                "fetch",
                uri,
                "/mnt/models",
            ]
            return subprocess.run(command, capture_output=True, text=True, timeout=180)

        digest = hashlib.sha256(artifact).hexdigest()
        ok = fetch("s3://models/iris/2.0.0/model.joblib", tmp_path / "volume", tmp_path / "log")
        assert ok.returncode == 0, ok.stderr
        assert (tmp_path / "volume" / "model" / "model.joblib").read_bytes() == artifact
        assert json.loads((tmp_path / "log").read_text()) == {
            "uri": "s3://models/iris/2.0.0/model.joblib",
            "sha256": digest,
            "files": 1,
        }
        missing = fetch("s3://models/iris/9.9.9/", tmp_path / "volume2", tmp_path / "log2")
        assert missing.returncode == 1
        assert (tmp_path / "log2").read_text() == (
            "s3://models/iris/9.9.9/: NoSuchKey (no object there, and none under it as a prefix)"
        )
