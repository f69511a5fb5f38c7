"""Third-party servers the tests and the demo run for real, each in a virtualenv of its own.

MLServer and moto pin packages that must not share the dev venv (moto's botocore wants
python-dateutil < 3, the kubernetes client >= 3), so each gets a venv at the repository root,
built once and reused while it holds exactly the pinned versions. When it cannot be
installed, SideVenvError carries pip's own error: a server a test claims to run is never
silently skipped.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: devtools/modeldeploy_dev/ is two below


class SideVenvError(RuntimeError):
    """A side venv could not be made, or a command in it failed: the message holds the tool's own error."""


INSTALL_TIMEOUT = 900.0


@dataclass(frozen=True)
class SideVenv:
    path: Path
    # Seconds spent creating it in this session; None when an existing one was reused.
    install_seconds: float | None

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name


def installed_versions(python: Path, names: list[str]) -> dict[str, str] | None:
    """The named distributions' versions in the venv at `python`, or None if it is unusable."""
    if not python.exists():
        return None
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(found))\n"
    )
    result = subprocess.run([str(python), "-c", script, *names], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None
    found: dict[str, str] = json.loads(result.stdout)
    return found


def run_or_fail(command: list[str], what: str, timeout: float) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        raise SideVenvError(
            f"{what}: `{' '.join(command)}` did not finish within {timeout:.0f}s:\n{expired.stderr!r}"
        ) from None
    if result.returncode != 0:
        raise SideVenvError(
            f"{what} failed with exit code {result.returncode}: `{' '.join(command)}`\n"
            f"--- stderr ---\n{result.stderr}\n--- stdout (tail) ---\n{result.stdout[-4000:]}"
        )


def ensure_venv(path: Path, pins: dict[str, str], what: str, extras: dict[str, str] | None = None) -> SideVenv:
    """Reuse the venv at `path` when it holds exactly `pins`, else (re)build it; fail with pip's error.

    `extras` name an extra to install with a pinned distribution (`{"moto": "server"}`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        # Two sessions (pytest, the demo) starting at once must not both pip-install into one directory.
        fcntl.flock(lock, fcntl.LOCK_EX)
        python = path / "bin" / "python"
        if installed_versions(python, list(pins)) == pins:
            return SideVenv(path, None)
        started = time.monotonic()
        if path.exists():
            # Another version, or an install that died halfway: start from scratch.
            shutil.rmtree(path)
        run_or_fail([sys.executable, "-m", "venv", str(path)], f"creating the {what} venv", 120)
        requirements = [
            f"{name}[{(extras or {})[name]}]=={version}" if name in (extras or {}) else f"{name}=={version}"
            for name, version in pins.items()
        ]
        run_or_fail(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *requirements],
            f"installing {what}",
            INSTALL_TIMEOUT,
        )
        found = installed_versions(python, list(pins))
        if found != pins:
            raise SideVenvError(f"the {what} venv at {path} holds {found} after installing {requirements}")
        return SideVenv(path, time.monotonic() - started)
