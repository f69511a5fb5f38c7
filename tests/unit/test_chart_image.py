"""The image the chart runs (operator/Dockerfile, .dockerignore) and the kind cluster config.

What the chart relies on (numeric non-root USER, the entrypoint, nothing written outside /tmp)
is checked against the chart's values by parsing the Dockerfile, in seconds; `make image-test`
(tests/image) builds the image and runs it as the operator.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass

import pytest
import yaml

from modeldeploy_dev.sandbox import versions
from tests.chart import ROOT, of_kind, render

DOCKERFILE = ROOT / "operator" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for this file)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "dangling line continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def test_known_instructions_only(instructions: list[Instruction]) -> None:
    known = {"ARG", "FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "LABEL"}
    assert {i.keyword for i in instructions} <= known


def test_multi_stage_on_slim_python_3_11(instructions: list[Instruction]) -> None:
    args = dict(i.arguments.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.arguments)
    froms = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2
    for base in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base.split()[0])
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image
    assert froms[0].endswith(" AS build")


def test_a_wheel_is_built_then_installed_in_the_final_stage(instructions: list[Instruction]) -> None:
    build, final = stages(instructions)[0], stages(instructions)[-1]
    assert any(i.keyword == "RUN" and "pip wheel" in i.arguments for i in build)
    installs = [i.arguments for i in final if i.keyword == "RUN" and "pip install" in i.arguments]
    assert len(installs) == 1
    assert "from=build" in installs[0]
    assert "--no-index" in installs[0]  # only the wheels built above, nothing fetched at this stage
    assert not any(i.keyword == "COPY" for i in final), "the final stage should carry no sources or wheels"


def test_runs_as_numeric_non_root_uid_matching_the_chart(instructions: list[Instruction]) -> None:
    final = stages(instructions)[-1]
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "USER must be numeric for the kubelet to verify runAsNonRoot"
    assert int(uid) == 10001
    assert not gid or gid.isdigit()
    (deployment,) = of_kind(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["containers"][0]["securityContext"]["runAsUser"] == int(uid)


def test_read_only_root_filesystem_friendly(instructions: list[Instruction]) -> None:
    final = stages(instructions)[-1]
    env: dict[str, str] = {}
    for i in final:
        if i.keyword == "ENV":
            for item in shlex.split(i.arguments):
                key, _, value = item.partition("=")
                env[key] = value
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"].startswith("/tmp")
    workdirs = [i.arguments for i in final if i.keyword == "WORKDIR"]
    assert workdirs[-1].startswith("/tmp")


def test_entrypoint_and_default_command(instructions: list[Instruction]) -> None:
    final = stages(instructions)[-1]
    (entrypoint,) = [yaml.safe_load(i.arguments) for i in final if i.keyword == "ENTRYPOINT"]
    (command,) = [yaml.safe_load(i.arguments) for i in final if i.keyword == "CMD"]
    assert entrypoint == ["modeldeploy"]  # exec form: signals reach the operator
    assert command == ["run"]
    (deployment,) = of_kind(render(), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][0] == "run"
    assert "command" not in deployment["spec"]["template"]["spec"]["containers"][0]
    # the model server runs from the same image: the package's entry points are installed
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'modeldeploy = "modeldeploy.cli:main"' in pyproject
    assert (ROOT / "operator" / "modeldeploy" / "modelserver" / "__main__.py").exists()


def test_exposed_ports_match_the_chart(instructions: list[Instruction]) -> None:
    exposed = {int(p) for i in instructions if i.keyword == "EXPOSE" for p in i.arguments.split()}
    (deployment,) = of_kind(render(), "Deployment")
    ports = {p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert exposed == ports


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent matches too."""
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes) or fnmatch.fnmatch(path, glob):
            result = not negate
    return result


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("pyproject.toml", False),
        ("operator/modeldeploy/cli.py", False),
        ("operator/modeldeploy/modelserver/iris_model.json", False),
        (".venv/bin/python", True),
        (".sandbox/pki/ca.key", True),
        (".git/config", True),
        ("tests/conftest.py", True),
        ("tests/kstatus/main.go", True),
        ("devtools/pyproject.toml", True),
        ("devtools/modeldeploy_dev/sandbox/build.py", True),
        ("operator/modeldeploy/__pycache__/cli.cpython-311.pyc", True),
        ("operator/modeldeploy.egg-info/PKG-INFO", True),
    ],
)
def test_dockerignore_keeps_the_context_to_the_sources(path: str, ignored: bool) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert _ignored(path, patterns) is ignored


def test_kind_config_matches_the_sandbox_minor() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    for node in config["nodes"]:
        match = re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.\d+(@sha256:[0-9a-f]{64})?", node["image"])
        assert match, node["image"]
        assert f"{match.group(1)}.{match.group(2)}" == versions.KUBERNETES_MINOR
