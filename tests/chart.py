"""Helm and chart helpers shared by the chart, RBAC and Pod Security tests.

Everything here is a plain function: the fixtures that use them live in the test modules, so
a module that must not share the sandbox with the session-wide admin operator stays explicit
about what it starts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_dev.sandbox import build
from tests.conftest import Kubectl, model_deployment

ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = ROOT / "charts" / "modeldeploy"
CRD_TEMPLATE = CHART_DIR / "templates" / "crd.yaml"
# 403 as a status, not the milliseconds of a log line's timestamp ("11:18:14,403 INFO ...")
FORBIDDEN_LINE = re.compile(r"(?<![,.])\b403\b|forbidden", re.IGNORECASE)

Doc = dict[str, Any]


@functools.cache
def helm_binary() -> str:
    return str(build.binary(build.HELM))


@functools.cache
def _helm_home() -> str:
    """Helm's config, cache and data dirs, private to this test process."""
    return tempfile.mkdtemp(prefix="modeldeploy-helm-")


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    home = _helm_home()
    env = {
        **os.environ,
        "HELM_CONFIG_HOME": f"{home}/config",
        "HELM_CACHE_HOME": f"{home}/cache",
        "HELM_DATA_HOME": f"{home}/data",
    }
    env.pop("KUBECONFIG", None)
    command = [helm_binary(), *args]
    if kubeconfig is not None:
        command.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result


def render(*args: str, release: str = "rel", namespace: str = "ops", chart: Path = CHART_DIR) -> list[Doc]:
    """`helm template` of the chart, as a list of documents (empty ones dropped)."""
    out = helm("template", release, str(chart), f"--namespace={namespace}", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def unique(prefix: str) -> str:
    """A DNS-label-safe name no other test (or test run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def scratch_namespace(admin: Kubectl, prefix: str) -> Iterator[str]:
    """A namespace of its own for the length of a test (deleted without waiting afterwards)."""
    name = unique(prefix)
    admin("create", "namespace", name)
    try:
        yield name
    finally:
        admin("delete", "namespace", name, "--wait=false", check=False)


def split_crd_template(text: str) -> tuple[str, str, str]:
    """The chart's CRD template as (opening lines, CRD YAML, closing line)."""
    lines = text.splitlines(keepends=True)
    head = [line for line in lines[:2] if line.startswith("{{")]
    assert len(head) == 2, "unexpected opening of templates/crd.yaml"
    assert lines[-1] == "{{- end }}\n", "unexpected end of templates/crd.yaml"
    return "".join(head), "".join(lines[2:-1]), lines[-1]


def crd_copy(
    tmp_path: Path, group: str, *, edit: Any = None, chart: Path = CHART_DIR, name: str = "chart"
) -> tuple[Path, Doc]:
    """A copy of the chart whose CRD is renamed into `group`, so it can be installed, upgraded
    and uninstalled without touching the shared modeldeployments.modeldeploy.io.

    The kind and plural change too (ambiguous plurals or short names across groups would make
    `kubectl get md` of concurrent tests resolve to this copy); `edit(crd)` may change it further.
    """
    target = tmp_path / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(chart, target)
    # the copy carries the ModelDeployment CRD alone: the runtime CRDs (and the runtimes) it would
    # share with the sandbox's, which no release may take over
    for shared in ("crd-modelruntimes.yaml", "crd-clustermodelruntimes.yaml", "runtimes.yaml"):
        (target / "templates" / shared).unlink()
    template = target / "templates" / "crd.yaml"
    head, body, tail = split_crd_template(template.read_text())
    crd: Doc = yaml.safe_load(body)
    token = group.split(".")[0].replace("-", "")
    kind = f"Charttest{token}"
    crd["spec"]["group"] = group
    crd["spec"]["names"] = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": f"charttest{token}s",
        "singular": f"charttest{token}",
    }
    crd["metadata"]["name"] = f"charttest{token}s.{group}"
    if edit is not None:
        edit(crd)
    template.write_text(head + yaml.safe_dump(crd, sort_keys=False) + tail)
    return target, crd


def service_account_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """A kubeconfig with the sandbox's server and CA and a ServiceAccount's bearer token."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": cluster}],
        "users": [{"name": "service-account", "user": {"token": token}}],
        "contexts": [{"name": "service-account", "context": {"cluster": "sandbox", "user": "service-account"}}],
        "current-context": "service-account",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def forbidden_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if FORBIDDEN_LINE.search(line)]


def assert_no_other_operator(kubectl: Kubectl, namespace: str, *, grace: float = 4.0) -> None:
    """Fail unless no operator serves `namespace` yet, so the one the test starts is alone.

    A modeldeploy operator writes status within a second of a ModelDeployment appearing; an
    untouched sentinel after `grace` seconds means nobody else (the module-scoped admin
    `operator` fixture, another pytest session on the same sandbox) would fight ours.
    """
    sentinel = model_deployment("no-other-operator", replicas=0)
    kubectl("apply", "-f", "-", input=json.dumps(sentinel))
    time.sleep(grace)
    status = json.loads(kubectl("get", "md", "no-other-operator", "-o", "json").stdout).get("status")
    kubectl("delete", "md", "no-other-operator", "--wait=true")
    if status:
        pytest.fail(
            f"another modeldeploy operator already serves namespace {namespace} (it wrote a status: {sorted(status)}); "
            "stop it (an admin `operator` fixture of another module or pytest session) before this test"
        )


def get(kubectl: Kubectl, *args: str) -> Any:
    """`kubectl get ... -o json`, untyped: tests index into it freely."""
    return json.loads(kubectl("get", *args, "-o", "json").stdout)
