"""The operator wheel holds the operator and nothing of the development tooling.

The wheel is built the way the image builds it (operator/Dockerfile: `pip wheel .` on a context of
pyproject.toml, README* and operator/, as .dockerignore keeps them), from a copy of those sources
in a temporary directory, so no stale `build/` of this checkout can leak into it and nothing is
written into the working tree. Then it is checked twice: by its file list, and by installing it
into an empty target directory and importing from there.

About 10 s: pip builds in an isolated environment (setuptools from its cache or PyPI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What never belongs in the operator wheel: the development package and what it used to be in
# the operator package (the sandbox with its stage files, the demo, the many-replicas server).
DEV_PATHS = ("modeldeploy_dev/", "modeldeploy/sandbox/", "devtools/")
DEV_NAMES = ("demo.py", "multi.py", "farm.py", "kwok-stages.yaml")
GO_SUFFIXES = (".go", "go.mod", "go.sum")


@dataclass(frozen=True)
class Wheel:
    path: Path
    names: list[str]
    site: Path  # the wheel installed alone (`pip install --target`)


def _image_context(destination: Path) -> Path:
    """pyproject.toml, README* and operator/ less caches: what the image build copies."""
    destination.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", destination)
    for readme in ROOT.glob("README*"):
        shutil.copy2(readme, destination)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".import_linter_cache", "Dockerfile")
    shutil.copytree(ROOT / "operator", destination / "operator", ignore=ignore)
    return destination


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr}{result.stdout}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    work = tmp_path_factory.mktemp("wheel")
    source = _image_context(work / "src")
    _pip("wheel", "--no-deps", "--wheel-dir", str(work / "dist"), str(source))
    (built,) = (work / "dist").glob("modeldeploy-*.whl")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
    _pip("install", "--no-deps", "--no-compile", "--target", str(work / "site"), str(built))
    return Wheel(built, names, work / "site")


def test_the_wheel_holds_the_operator_the_api_and_the_reference_model_server(wheel: Wheel) -> None:
    for expected in (
        "modeldeploy/cli.py",
        "modeldeploy/runner.py",
        "modeldeploy/api/v1alpha1/__init__.py",
        "modeldeploy/crdgen/__main__.py",
        "modeldeploy/modelserver/__main__.py",
        "modeldeploy/modelserver/iris_model.json",
        "modeldeploy/py.typed",
    ):
        assert expected in wheel.names, f"{expected} missing from {wheel.path.name}"
    top_level = {name.split("/")[0] for name in wheel.names}
    assert top_level == {"modeldeploy", "modeldeploy-0.1.0.dist-info"}


def test_the_wheel_holds_no_development_tooling_and_no_go_code(wheel: Wheel) -> None:
    assert [n for n in wheel.names if n.startswith(DEV_PATHS)] == []
    assert [n for n in wheel.names if n.rsplit("/", 1)[-1] in DEV_NAMES] == []
    assert [n for n in wheel.names if n.endswith(GO_SUFFIXES)] == []
    assert [n for n in wheel.names if "sandbox" in n] == []
    (entry_points,) = [n for n in wheel.names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel.path) as archive:
        scripts = archive.read(entry_points).decode()
    assert "modeldeploy = modeldeploy.cli:main" in scripts
    assert "kubectl-modeldeploy = modeldeploy.cli:main" in scripts  # the kubectl plugin
    assert "modeldeploy-dev" not in scripts
    assert "modeldeploy_dev" not in scripts


def _python(site: Path, code: str, *args: str, isolated: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -c code args` with the installed wheel ahead of everything on the path.

    isolated: with -S, no site-packages at all, so neither this checkout's editable installs nor
    anything else is importable: only the wheel.
    """
    flags = ["-S"] if isolated else []
    return subprocess.run(
        [sys.executable, *flags, "-c", code, *args],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=site,
    )


@pytest.mark.parametrize("module", ["modeldeploy.sandbox", "modeldeploy.demo", "modeldeploy.modelserver.multi"])
def test_the_installed_wheel_cannot_import_the_old_tooling_modules(wheel: Wheel, module: str) -> None:
    result = _python(wheel.site, f"import modeldeploy; print(modeldeploy.__file__); import {module}")
    assert result.stdout.strip() == str(wheel.site / "modeldeploy" / "__init__.py")
    assert result.returncode != 0
    assert f"ModuleNotFoundError: No module named '{module}'" in result.stderr


def test_the_installed_wheel_has_no_development_package(wheel: Wheel) -> None:
    result = _python(wheel.site, "import modeldeploy_dev")
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'modeldeploy_dev'" in result.stderr


def test_the_installed_wheels_command_line_offers_no_sandbox_or_demo(wheel: Wheel) -> None:
    # with site-packages this time (the CLI needs pydantic for its flags); the wheel's package comes first
    code = "import sys, modeldeploy.cli as c; print(c.__file__); sys.exit(c.main(sys.argv[1:]))"
    for command in ("sandbox", "demo"):
        result = _python(wheel.site, code, command, "up", isolated=False)
        assert result.stdout.strip() == str(wheel.site / "modeldeploy" / "cli.py")
        assert result.returncode == 2
        assert f"invalid choice: '{command}' (choose from 'run', 'fetch', 'rollout')" in result.stderr
