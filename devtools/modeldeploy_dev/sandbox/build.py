"""Build the sandbox's binaries from Go modules, once, into a cache keyed by version.

There is no Docker engine and no binary download on these machines, only the Go module
proxy. Every binary is therefore compiled here; a cold build takes many minutes, so each
one lands in `<cache>/<component>-<version>/` and is never rebuilt while it is there.

This module uses the standard library only: it runs before any virtualenv exists
(`python devtools/modeldeploy_dev/sandbox/build.py`) as well as from `modeldeploy-dev sandbox`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

try:  # imported as part of the package, or run as a plain script before install
    from modeldeploy_dev.sandbox import versions
except ImportError:  # pragma: no cover - script mode
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from modeldeploy_dev.sandbox import versions

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def cache_root() -> Path:
    """Where built binaries live; `MODELDEPLOY_CACHE_DIR` overrides the XDG default."""
    override = os.environ.get("MODELDEPLOY_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "modeldeploy"


@dataclass(frozen=True)
class Component:
    """One cached build: its folder name carries the version, so a bump rebuilds."""

    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def directory(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    def path(self, binary: str | None = None) -> Path:
        return self.directory / (binary or self.binaries[0])

    def is_built(self) -> bool:
        return all((self.directory / b).is_file() for b in self.binaries)


KUBERNETES = Component("kubernetes", versions.KUBERNETES, KUBE_COMMANDS)
ETCD = Component("etcd", versions.ETCD, ("etcd",))
KWOK = Component("kwok", versions.KWOK, ("kwok",))
HELM = Component("helm", versions.HELM, ("helm",))
KSTATUS = Component("kstatus", versions.CLI_UTILS, ("kstatus",))


def _source_digest(directory: str) -> str:
    """A short digest of a test tool's Go sources, so an edited tool is rebuilt, not reused."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parents[3] / "tests" / directory).glob("*")):
        if path.suffix in (".go", ".mod", ".sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:8]


ARGOCD_LUA = Component("argocd-lua", f"{versions.GOPHER_LUA}-{_source_digest('argocd-lua')}", ("argocd-lua",))
PROMTOOL = Component("promtool", versions.PROMETHEUS, ("promtool",))
KUBE_RBAC_PROXY = Component("kube-rbac-proxy", versions.KUBE_RBAC_PROXY, ("kube-rbac-proxy",))
ALL = (KUBERNETES, ETCD, KWOK, HELM)
TEST_TOOLS = (KSTATUS, ARGOCD_LUA, PROMTOOL, KUBE_RBAC_PROXY)


def binary(component: Component, name: str | None = None) -> Path:
    """Path of a cached binary; builds it first when it is missing."""
    if not component.is_built():
        BUILDERS[component.name]()
    return component.path(name)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")
    return env


def _log(message: str) -> None:
    print(f"[sandbox build] {message}", file=sys.stderr, flush=True)


def _run_go(args: Sequence[str], cwd: Path, label: str) -> None:
    """Run a go command, echoing a progress line every 20 s instead of its flood of output."""
    started = time.monotonic()
    proc = subprocess.Popen(
        ["go", *args],
        cwd=cwd,
        env=_go_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(20):
            elapsed = time.monotonic() - started
            _log(f"{label}: {len(lines)} packages/lines so far, {elapsed:.0f}s")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
    code = proc.wait()
    done.set()
    if code != 0:
        tail = "\n".join(lines[-40:])
        raise RuntimeError(f"{label} failed: go {' '.join(args)} (exit {code})\n{tail}")


def _timed(component: Component, build: Callable[[Path], None]) -> None:
    if component.is_built():
        return
    started = time.monotonic()
    _log(f"building {component.name} {component.version} (first run only; cached in {component.directory})")
    component.directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{component.name}-", dir=component.directory.parent))
    try:
        build(staging)
        if component.directory.exists():
            shutil.rmtree(component.directory)
        staging.chmod(0o755)
        staging.rename(component.directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _log(f"built {component.name} {component.version} in {time.monotonic() - started:.0f}s")


def _module_dir(name: str) -> Path:
    path = cache_root() / "src" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def kubernetes_staging_modules(version: str) -> list[str]:
    """The `k8s.io/<staging>` modules k8s.io/kubernetes maps to ./staging, read from its go.mod."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
        env=_go_env(),
        check=True,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    ).stdout
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, re.MULTILINE)))


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "0000000000000000000000000000000000000000",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def build_kubernetes() -> None:
    version = KUBERNETES.version

    def build(out: Path) -> None:
        staging_version = "v0." + version.lstrip("v").split(".", 1)[1]
        modules = kubernetes_staging_modules(version)
        src = _module_dir(f"kubernetes-{version}")
        replaces = "\n".join(f"\t{m} => {m} {staging_version}" for m in modules)
        (src / "go.mod").write_text(
            "module modeldeploy.local/kubebuild\n\ngo 1.26.0\n\n"
            f"require k8s.io/kubernetes {version}\n\nreplace (\n{replaces}\n)\n"
        )
        imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"' for c in KUBE_COMMANDS)
        (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
        _log(f"resolving k8s.io/kubernetes {version} with {len(modules)} staging modules at {staging_version}")
        _run_go(["mod", "tidy"], src, "go mod tidy (kubernetes)")
        targets = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
        _run_go(
            ["build", "-v", "-trimpath", "-ldflags", _version_ldflags(version), "-o", f"{out}/", *targets],
            src,
            "go build (kubernetes)",
        )

    _timed(KUBERNETES, build)


def build_etcd() -> None:
    version = ETCD.version

    def build(out: Path) -> None:
        src = _module_dir(f"etcd-{version}")
        (src / "go.mod").write_text("module modeldeploy.local/etcdbuild\n\ngo 1.26.0\n")
        (src / "main.go").write_text(
            'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
            "func main() { etcdmain.Main(os.Args) }\n"
        )
        _run_go(["get", f"go.etcd.io/etcd/server/v3@{version}"], src, "go get (etcd)")
        _run_go(["mod", "tidy"], src, "go mod tidy (etcd)")
        _run_go(["build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."], src, "go build (etcd)")

    _timed(ETCD, build)


def _go_install(component: Component, package: str) -> None:
    def build(out: Path) -> None:
        env_bin = os.environ.get("GOBIN")
        os.environ["GOBIN"] = str(out)
        try:
            _run_go(
                ["install", "-v", "-trimpath", "-ldflags", "-s -w", f"{package}@{component.version}"],
                Path(tempfile.gettempdir()),
                f"go install ({component.name})",
            )
        finally:
            if env_bin is None:
                os.environ.pop("GOBIN", None)
            else:
                os.environ["GOBIN"] = env_bin

    _timed(component, build)


def build_kwok() -> None:
    _go_install(KWOK, "sigs.k8s.io/kwok/cmd/kwok")


def build_helm() -> None:
    _go_install(HELM, "helm.sh/helm/v3/cmd/helm")


def build_promtool() -> None:
    _go_install(PROMTOOL, "github.com/prometheus/prometheus/cmd/promtool")


def _downloaded(module: str, version: str) -> Path:
    """A Go module's files, as the module proxy serves them (read-only, in the module cache)."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=tempfile.gettempdir(),
        env=_go_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(found.stdout)["Dir"])


def build_kube_rbac_proxy() -> None:
    """Built in its own module, whose go.mod carries a replace directive `go install` refuses."""
    version = KUBE_RBAC_PROXY.version

    def build(out: Path) -> None:
        src = _module_dir(f"kube-rbac-proxy-{version}")
        shutil.rmtree(src)
        shutil.copytree(_downloaded("github.com/brancz/kube-rbac-proxy", version), src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
        ldflags = f"-s -w -X k8s.io/component-base/version.gitVersion={version}"
        _run_go(
            [
                "build",
                "-v",
                "-trimpath",
                "-ldflags",
                ldflags,
                "-o",
                str(out / "kube-rbac-proxy"),
                "./cmd/kube-rbac-proxy",
            ],
            src,
            "go build (kube-rbac-proxy)",
        )

    _timed(KUBE_RBAC_PROXY, build)


def build_kstatus() -> None:
    """The kstatus probe (tests/kstatus) compiled against sigs.k8s.io/cli-utils."""
    source = Path(__file__).resolve().parents[3] / "tests" / "kstatus"

    def build(out: Path) -> None:
        _run_go(
            ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "kstatus"), "."], source, "go build (kstatus)"
        )

    _timed(KSTATUS, build)


def build_argocd_lua() -> None:
    """Argo CD's health-check runtime (tests/argocd-lua) compiled against github.com/yuin/gopher-lua."""
    source = Path(__file__).resolve().parents[3] / "tests" / "argocd-lua"

    def build(out: Path) -> None:
        _run_go(
            ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "argocd-lua"), "."],
            source,
            "go build (argocd-lua)",
        )

    _timed(ARGOCD_LUA, build)


BUILDERS: dict[str, Callable[[], None]] = {
    KUBERNETES.name: build_kubernetes,
    ETCD.name: build_etcd,
    KWOK.name: build_kwok,
    HELM.name: build_helm,
    KSTATUS.name: build_kstatus,
    ARGOCD_LUA.name: build_argocd_lua,
    PROMTOOL.name: build_promtool,
    KUBE_RBAC_PROXY.name: build_kube_rbac_proxy,
}


GATEWAY_API = Component("gateway-api", versions.GATEWAY_API, ("gateway.networking.k8s.io_httproutes.yaml",))
KEDA = Component("keda", versions.KEDA, ("keda.sh_scaledobjects.yaml",))


def _module_crds(component: Component, module: str, folder: str, keep: Callable[[str], bool]) -> list[Path]:
    """CRD files as a Go module ships them (downloaded once, cached by version)."""
    if not component.is_built():

        def fetch(out: Path) -> None:
            for crd in sorted((_downloaded(module, component.version) / folder).glob("*.yaml")):
                if keep(crd.name):
                    shutil.copyfile(crd, out / crd.name)

        _timed(component, fetch)
    return sorted(component.directory.glob("*.yaml"))


def gateway_api_crds() -> list[Path]:
    """The Gateway API's standard CRDs. Only CRDs: the sandbox has no gateway controller, so routes
    are objects to read and write, not traffic paths."""
    return _module_crds(
        GATEWAY_API,
        "sigs.k8s.io/gateway-api",
        "config/crd/standard",
        # not the ValidatingAdmissionPolicy that ships beside them
        lambda name: name.startswith("gateway.networking.k8s.io_") and "_vap_" not in name,
    )


def keda_crds() -> list[Path]:
    """KEDA's ScaledObject CRD (and TriggerAuthentication, which a ScaledObject may name)."""
    return _module_crds(
        KEDA,
        "github.com/kedacore/keda/v2",
        "config/crd/bases",
        lambda name: name in ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml"),
    )


def build_all(components: Sequence[Component] = ALL) -> None:
    if shutil.which("go") is None:
        raise RuntimeError("Go is required to build the sandbox (https://go.dev/doc/install); `go` is not on PATH")
    started = time.monotonic()
    for component in components:
        BUILDERS[component.name]()
    _log(f"all binaries ready in {cache_root()} ({time.monotonic() - started:.0f}s)")


if __name__ == "__main__":
    build_all()
