"""MLServer for the tests and the demo: its virtualenv, and an iris model trained with its own scikit-learn.

MLServer pins many packages (fastapi, pydantic, numpy, ...) and must not share the dev venv,
so it gets `.venv-mlserver/` at the repository root (or `MODELDEPLOY_MLSERVER_VENV`), built
once and reused (see sidevenv.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from modeldeploy_dev.sidevenv import ROOT, SideVenv, ensure_venv, run_or_fail

MLSERVER_VERSION = "1.7.1"
PINS = {"mlserver": MLSERVER_VERSION, "mlserver-sklearn": MLSERVER_VERSION}
MLSERVER_IMAGE = f"docker.io/seldonio/mlserver:{MLSERVER_VERSION}"  # what the chart's runtimes run
TRAIN_SCRIPT = Path(__file__).resolve().parent / "train_iris.py"
TRAIN_TIMEOUT = 300.0


def venv_dir() -> Path:
    return Path(os.environ.get("MODELDEPLOY_MLSERVER_VENV") or ROOT / ".venv-mlserver").resolve()


def ensure_mlserver_venv() -> SideVenv:
    return ensure_venv(venv_dir(), PINS, "MLServer")


def train_iris(
    venv: SideVenv,
    folder: Path,
    *,
    name: str = "iris",
    version: str | None = "1.0.0",
    dependency_versions: list[str] | None = None,
) -> Path:
    """`folder` with model.joblib and model-settings.json, trained by the venv's scikit-learn; returns it.

    `version=None` leaves parameters.version out (an unversioned model); `dependency_versions`
    fills model-settings' `versions` (e.g. "sklearn/1.9.1").
    """
    extra = [arg for v in dependency_versions or [] for arg in ("--dependency-version", v)]
    run_or_fail(
        [str(venv.python), str(TRAIN_SCRIPT), str(folder), "--name", name, "--version", version or "", *extra],
        "training the iris model",
        TRAIN_TIMEOUT,
    )
    return folder


def image_stand_in(venv: SideVenv) -> dict[str, object]:
    """How the sandbox's farm runs the MLServer image here (see sandbox/kubelet.py)."""
    return {
        # the image's CMD is `mlserver start $MLSERVER_MODELS_DIR`, in its own Python environment
        "cmd": ["sh", "-c", f'exec {venv.bin("mlserver")} start "$MLSERVER_MODELS_DIR"'],
        "hostEnv": "MLSERVER_HOST",
        # Not the image's: MLServer 1.7.1 from PyPI resolves uvloop 0.23, whose get_event_loop()
        # kills MLServer's inference worker processes at start; the image pins its own uvloop.
        "env": {"MLSERVER_PARALLEL_WORKERS": "0"},
    }
