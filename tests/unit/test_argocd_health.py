"""The Argo CD health check (integrations/argocd/health.lua), run by the interpreter Argo CD runs.

Each case is a YAML file under tests/fixtures/argocd/: `object` (the ModelDeployment Argo CD
would hand the script as `obj`) and `expect` (`status`, a `message` substring and, optionally,
a `messageExcludes` substring).

Argo CD runs health scripts in gopher-lua with only the package, base and table libraries and
a reduced os library opened, unless a customization sets `useOpenLibs` (no string, no math).
`tests/argocd-lua` is a small Go program built from github.com/yuin/gopher-lua that does the
same (`modeldeploy-dev sandbox build --test-tools`, cached beside helm): every case runs there, and
must. An earlier script called string.format and failed inside Argo CD on every spec change,
while these tests, run in stock Lua with the string library open, passed.

Stock `lua5.4` and `lua5.1`, when installed, run the cases too, with the same libraries.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_dev.sandbox import build

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "integrations" / "argocd" / "health.lua"
FIXTURES = ROOT / "tests" / "fixtures" / "argocd"
GITOPS_DOC = ROOT / "docs" / "gitops.md"
EXAMPLES = ROOT / "docs" / "examples"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
HEALTH_KEY = "resource.customizations.health.modeldeploy.io_ModelDeployment"
REINLINE = "run `python integrations/argocd/inline.py`"

CASES = sorted(FIXTURES.glob("*.yaml"))

# Loads health.lua into a sandboxed environment under both 5.1 (setfenv) and 5.2+ (load's env).
HARNESS = textwrap.dedent(
    """\
    local path = %s
    local env = {
      obj = %s,
      assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
      select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
      table = table,
    }
    local f = assert(io.open(path, "r"))
    local source = f:read("*a")
    f:close()
    local chunk
    if setfenv then
      chunk = assert(loadstring(source, "@" .. path))
      setfenv(chunk, env)
    else
      chunk = assert(load(source, "@" .. path, "t", env))
    end
    local hs = chunk()
    assert(type(hs) == "table", "health.lua returned " .. type(hs) .. ", not a table")
    assert(type(hs.status) == "string", "hs.status is " .. type(hs.status))
    assert(type(hs.message) == "string", "hs.message is " .. type(hs.message))
    io.write(hs.status, "\\n", hs.message)
    """
)


def lua_string(text: str) -> str:
    """A Lua string literal; every byte outside printable ASCII is a decimal escape (valid in 5.1 and 5.4)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def to_lua(value: Any) -> str:
    """A Lua table literal shaped like the table Argo CD builds from the object's JSON."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"no JSON number for {value}")
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, dt.datetime | dt.date):  # YAML timestamps: JSON has them as strings
        return lua_string(value.isoformat().replace("+00:00", "Z"))
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_string(str(k))}] = {to_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    raise TypeError(f"cannot express {type(value).__name__} in Lua")


def interpreter(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (optional: gopher-lua, what Argo CD runs, checks every case)")
    return path


def run_in_argocd(objects: list[Any]) -> list[dict[str, str]]:
    """Verdicts from gopher-lua with Argo CD's default libraries, one per object."""
    runtime = build.binary(build.ARGOCD_LUA)
    lines = "".join(json.dumps(o, default=_json_default, ensure_ascii=False) + "\n" for o in objects)
    result = subprocess.run(
        [str(runtime), str(HEALTH_LUA)], input=lines, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date):  # YAML timestamps: JSON has them as strings
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot express {type(value).__name__} in JSON")


def run_health(lua: str, obj: Any, tmp_path: Path) -> tuple[str, str]:
    harness = tmp_path / "harness.lua"
    harness.write_text(HARNESS % (lua_string(str(HEALTH_LUA)), to_lua(obj)))
    result = subprocess.run([lua, str(harness)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{lua} failed ({result.returncode}):\n{result.stderr}"
    status, _, message = result.stdout.partition("\n")
    return status, message


def load_case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text())
    assert isinstance(case, dict), path
    assert set(case) == {"description", "expect", "object"}, f"{path.name}: unexpected keys {sorted(case)}"
    assert case["expect"]["status"] in ARGO_STATUSES, f"{path.name}: not an Argo CD health status"
    assert case["expect"]["message"], f"{path.name}: expect.message must be a non-empty substring"
    return case


def test_there_are_enough_cases_and_every_verdict_is_covered() -> None:
    expected = [load_case(p)["expect"]["status"] for p in CASES]
    assert len(expected) >= 10
    assert {"Healthy", "Progressing", "Degraded"} <= set(expected)


def check(case_path: Path, case: dict[str, Any], status: str, message: str) -> None:
    expect = case["expect"]
    assert (status, expect["message"] in message) == (expect["status"], True), (
        f"{case_path.name}: {case['description']}\n"
        f"  expected {expect['status']} with message containing {expect['message']!r}\n"
        f"  got      {status} with message {message!r}"
    )
    excluded = expect.get("messageExcludes")
    if excluded:
        assert excluded.lower() not in message.lower(), f"{case_path.name}: message {message!r} mentions {excluded!r}"


def test_every_case_in_argo_cds_own_lua_with_its_default_libraries() -> None:
    cases = [load_case(p) for p in CASES]
    verdicts = run_in_argocd([c["object"] for c in cases])
    assert len(verdicts) == len(cases)
    for path, case, verdict in zip(CASES, cases, verdicts, strict=True):
        assert "error" not in verdict, f"{path.name}: the script fails inside Argo CD: {verdict['error']}"
        check(path, case, verdict["status"], verdict["message"])


def test_a_script_needing_the_string_library_fails_in_argo_cd(tmp_path: Path) -> None:
    """The harness really withholds what Argo CD withholds: the old script's call fails there."""
    script = tmp_path / "needs-string.lua"
    script.write_text('return { status = "Healthy", message = string.format("%d", 1) }\n')
    result = subprocess.run(
        [str(build.binary(build.ARGOCD_LUA)), str(script)], input="{}\n", capture_output=True, text=True, check=True
    )
    assert "format" in json.loads(result.stdout)["error"]


@pytest.mark.parametrize("case_path", CASES, ids=[p.stem for p in CASES])
@pytest.mark.parametrize("lua_name", ["lua5.4", "lua5.1"])
def test_health_in_stock_lua(case_path: Path, lua_name: str, tmp_path: Path) -> None:
    lua = interpreter(lua_name)
    case = load_case(case_path)
    status, message = run_health(lua, case["object"], tmp_path)
    check(case_path, case, status, message)


def test_non_ascii_messages_pass_through() -> None:
    case = load_case(FIXTURES / "stalled.yaml")
    for condition in case["object"]["status"]["conditions"]:
        if condition["type"] == "Stalled":
            condition["message"] = 'Modell "größe" unbekannt — 模型'
    [verdict] = run_in_argocd([case["object"]])
    assert verdict == {"status": "Degraded", "message": 'InvalidModelURI: Modell "größe" unbekannt — 模型'}


def test_script_uses_only_argocd_sandbox_libraries() -> None:
    source = HEALTH_LUA.read_text()
    code = "\n".join(line.split("--", 1)[0] for line in source.splitlines())  # comments may say anything
    assert not re.search(r"[\w\)\]\"]:\w+\(", code), "a method call on a string needs the string library"
    for forbidden in ("io.", "os.", "require", "dofile", "loadfile", "debug.", "string.", "math."):
        assert forbidden not in code, f"health.lua uses {forbidden!r}, which Argo CD's Lua sandbox lacks"
    assert source.rstrip().endswith("return health(obj)")


def _yaml_blocks(markdown: str) -> list[Any]:
    docs: list[Any] = []
    for block in markdown.split("```yaml\n")[1:]:
        docs.extend(d for d in yaml.safe_load_all(block.split("```", 1)[0]) if d is not None)
    return docs


def _argocd_cm_from_markdown(markdown: str) -> dict[str, Any]:
    for doc in _yaml_blocks(markdown):
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and HEALTH_KEY in doc.get("data", {}):
            return doc
    raise AssertionError(f"docs/gitops.md has no ConfigMap block with {HEALTH_KEY}")


def test_docs_inline_the_current_health_check() -> None:
    expected = HEALTH_LUA.read_text()
    in_doc = _argocd_cm_from_markdown(GITOPS_DOC.read_text())
    assert in_doc["metadata"]["name"] == "argocd-cm"
    assert in_doc["data"][HEALTH_KEY] == expected, f"docs/gitops.md is stale: {REINLINE}"
    in_example = yaml.safe_load((EXAMPLES / "argocd-cm.yaml").read_text())
    assert in_example["data"][HEALTH_KEY] == expected, f"docs/examples/argocd-cm.yaml is stale: {REINLINE}"


def test_docs_show_every_example_file() -> None:
    in_doc = _yaml_blocks(GITOPS_DOC.read_text())
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert doc in in_doc, f"docs/gitops.md lacks (or has an old copy of) a document of {path.name}"


def test_gitops_examples_are_valid_documents() -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, path
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.name}: not a Kubernetes object"
            by_kind.setdefault(doc["kind"], []).append(doc)
    (application,) = by_kind["Application"]
    assert application["apiVersion"] == "argoproj.io/v1alpha1"
    assert application["spec"]["syncPolicy"]["automated"]
    kustomizations = by_kind["Kustomization"]
    assert all(k["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1" for k in kustomizations)
    waiting = [k for k in kustomizations if k["spec"].get("wait") is True]
    checking = [k for k in kustomizations if k["spec"].get("healthChecks")]
    assert waiting
    assert checking
    # Flux ignores healthChecks when wait is true: an example setting both would mislead.
    assert not [k for k in waiting if k["spec"].get("healthChecks")]
    for kustomization in checking:
        for check in kustomization["spec"]["healthChecks"]:
            assert (check["apiVersion"], check["kind"]) == ("modeldeploy.io/v1alpha1", "ModelDeployment")
    source_names = {s["metadata"]["name"] for s in by_kind["GitRepository"]}
    assert all(k["spec"]["sourceRef"]["name"] in source_names for k in kustomizations)
