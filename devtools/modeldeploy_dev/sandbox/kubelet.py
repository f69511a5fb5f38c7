"""The farm's kubelet: runs a pod's containers as local processes when every image of the pod is known here.

kwok runs no containers. For a pod whose images all have a local stand-in (listed in the
sandbox's `farm/images.json`), the farm does what a kubelet would: it runs the init containers
one after the other, then the model server container, each with the pod's environment
(`envFrom` Secrets, `env` with `$(VAR)` references expanded in order, `fieldRef`s), its
emptyDir volumes as folders under the farm's state directory, and the pod's address (a 127.x
IP) as the server's listen address. Init containers' exit codes and termination messages go
onto the pod's status the way the kubelet reports them, restarts back off as in CrashLoopBackOff.

What cannot be faithful is said in the images file, per image: the image's ENTRYPOINT and CMD
as local argv, the variable its server reads its listen address from, and any argument that
names where the process writes its termination message (there is no /dev/termination-log).
Paths under a volume's mountPath in arguments and variables are rewritten to the volume's folder.

    {
      "docker.io/seldonio/mlserver:1.7.1": {
        "cmd": ["sh", "-c", "exec /path/to/mlserver start \\"$MLSERVER_MODELS_DIR\\""],
        "hostEnv": "MLSERVER_HOST"
      },
      "ghcr.io/modeldeploy/modeldeploy:0.1.0": {
        "executables": {"modeldeploy": "/path/to/.venv/bin/modeldeploy"},
        "terminationLogArg": "--termination-log"
      }
    }
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from modeldeploy import kubeapi

log = logging.getLogger("modeldeploy.farm.kubelet")
Obj = dict[str, Any]
FARM_DIR = "farm"  # in the sandbox's directory: the images file, and a folder per pod run
IMAGES_FILE = "images.json"
MESSAGE_LIMIT = 4096  # the kubelet keeps this much of a termination message
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 20.0
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class KnownImage:
    """How to run one image here: its ENTRYPOINT/CMD as local argv, and what the node would decide."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    executables: Mapping[str, str] = field(default_factory=dict)
    host_env: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    termination_log_arg: str | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> KnownImage:
        return cls(
            entrypoint=tuple(raw.get("entrypoint", ())),
            cmd=tuple(raw.get("cmd", ())),
            executables=dict(raw.get("executables", {})),
            host_env=raw.get("hostEnv"),
            env=dict(raw.get("env", {})),
            termination_log_arg=raw.get("terminationLogArg"),
        )


def load_images(path: Path) -> dict[str, KnownImage]:
    """The images file, read afresh (tests and the demo write it while the farm runs); none when absent."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("ignoring %s: %s", path, error)
        return {}
    return {image: KnownImage.of(spec) for image, spec in raw.items()}


_GIVEN_VOLUMES = ("emptyDir", "downwardAPI", "projected")


def runnable(pod: Obj, images: Mapping[str, KnownImage]) -> bool:
    """Every container of the pod has a local stand-in, and every volume is one the farm can give."""
    spec = pod.get("spec", {})
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    if not containers or any(c.get("image") not in images for c in containers):
        return False
    return all(any(kind in volume for kind in _GIVEN_VOLUMES) for volume in spec.get("volumes", []))


def sidecars(pod: Obj, images: Mapping[str, KnownImage]) -> list[Obj]:
    """Containers of a pod whose model server the farm simulates that can still run for real (a proxy)."""
    return [
        c
        for c in pod.get("spec", {}).get("containers", [])
        if c.get("image") in images and not any(e.get("name") == "MODEL_NAME" for e in c.get("env", []))
    ]


_POD_LOCAL = re.compile(r"(?<![0-9.])(0\.0\.0\.0|127\.0\.0\.1|localhost)(?=:[0-9])")


def pod_local(value: str, pod_ip: str) -> str:
    """Inside a pod, every interface and the loopback are the pod's own: here, its 127.x address."""
    return _POD_LOCAL.sub(pod_ip, value)


def downward_files(volume: Obj, pod: Obj) -> dict[str, str]:
    """The files a downwardAPI volume (or a projected one's downwardAPI source) shows, for the fields pods use."""
    sources = [volume.get("downwardAPI")] + [
        source.get("downwardAPI") for source in (volume.get("projected") or {}).get("sources", [])
    ]
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    files = {}
    for source in sources:
        for item in (source or {}).get("items", []):
            path = (item.get("fieldRef") or {}).get("fieldPath", "")
            match = re.fullmatch(r"metadata\.annotations\['(.+)'\]", path)
            files[item["path"]] = str(annotations.get(match.group(1), "")) if match else field_value(pod, path)
    return files


def expand(value: str, defined: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a variable defined before is replaced, $$ is a literal $, else as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return defined.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, value)


def rewrite_paths(value: str, mounts: Mapping[str, Path]) -> str:
    """A path under a volume's mountPath, as the same path under the volume's folder here (`--flag=path` too)."""
    flag, equals, rest = value.partition("=")
    if equals and flag.startswith("-") and rest.startswith("/"):
        return f"{flag}={rewrite_paths(rest, mounts)}"
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")) :]
    return value


def field_value(pod: Obj, path: str) -> str:
    """What a fieldRef names, for the fields model pods use."""
    metadata, status = pod.get("metadata", {}), pod.get("status", {})
    known = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    return str(known.get(path) or "")


def container_env(
    container: Obj, pod: Obj, secrets: Mapping[str, Mapping[str, str]], mounts: Mapping[str, Path]
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom, then env in order, references expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        secret = (source.get("secretRef") or {}).get("name")
        if secret is not None:
            env.update({f"{source.get('prefix', '')}{k}": v for k, v in secrets.get(secret, {}).items()})
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            source = entry["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = secrets.get(ref["name"], {}).get(ref["key"], "")
            elif "fieldRef" in source:
                value = field_value(pod, source["fieldRef"]["fieldPath"])
            else:
                value = ""
        else:
            value = expand(str(entry.get("value", "")), env)
        env[entry["name"]] = rewrite_paths(value, mounts)
    return env


def container_argv(container: Obj, image: KnownImage, env: Mapping[str, str], mounts: Mapping[str, Path]) -> list[str]:
    """command/args over the image's ENTRYPOINT/CMD, as Kubernetes combines them, expanded and rewritten."""
    command, args = container.get("command"), container.get("args")
    given = [*command, *(args or [])] if command else [*image.entrypoint, *(args if args is not None else image.cmd)]
    argv = [rewrite_paths(expand(str(a), env), mounts) for a in given]
    if argv and argv[0] in image.executables:
        argv[0] = image.executables[argv[0]]
    return argv


def _log_handle(path: Path, append: bool) -> BinaryIO:
    """Handed to the child process; _spawn closes our copy."""
    return path.open("ab" if append else "wb")


async def _spawn(
    argv: list[str], env: Mapping[str, str], cwd: Path, log_file: Path, *, append: bool
) -> asyncio.subprocess.Process:
    """The container's process in a session of its own (its whole tree can be stopped), output to log_file."""
    out = _log_handle(log_file, append)
    try:
        return await asyncio.create_subprocess_exec(
            *argv, env=dict(env), cwd=cwd, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
    finally:
        out.close()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodRun:
    """One pod's containers, run until the pod goes away."""

    def __init__(
        self,
        api: kubeapi.KubeClient,
        pod: Obj,
        images: Mapping[str, KnownImage],
        state_dir: Path,
        containers: list[Obj] | None = None,
    ) -> None:
        """`containers`: only these, and no init containers (sidecars beside a simulated model server)."""
        self.api = api
        self.pod = pod
        self.images = images
        metadata = pod["metadata"]
        self.name = f"{metadata.get('namespace')}/{metadata.get('name')}"
        self.directory = state_dir / "pods" / str(metadata["uid"])
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.init_statuses: list[Obj] = []
        self.only = containers

    async def run(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            volumes = {v["name"]: self.directory / "volumes" / v["name"] for v in self.pod["spec"].get("volumes", [])}
            for volume in self.pod["spec"].get("volumes", []):
                folder = volumes[volume["name"]]
                folder.mkdir(parents=True, exist_ok=True)
                for path, text in downward_files(volume, self.pod).items():
                    (folder / path).write_text(text)
            secrets = await self._secrets()
            spec = self.pod["spec"]
            if self.only is None:
                for index, container in enumerate(spec.get("initContainers", [])):
                    await self._init_container(index, container, volumes, secrets)
            running = self.only if self.only is not None else spec["containers"]
            async with asyncio.TaskGroup() as group:  # one container failing to start stops them all
                for container in running:
                    group.create_task(self._serve(container, volumes, secrets))
        except asyncio.CancelledError:
            await self._stop()
            raise
        except Exception:
            log.exception("running %s failed", self.name)
            await self._stop()

    async def _secrets(self) -> dict[str, dict[str, str]]:
        names: set[str] = set()
        spec = self.pod["spec"]
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            names |= {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in (e.get("valueFrom") or {})
            }
        found: dict[str, dict[str, str]] = {}
        for name in names:
            secret = await self.api.get(kubeapi.SECRET, self.pod["metadata"]["namespace"], name)
            data = (secret or {}).get("data") or {}
            found[name] = {k: base64.b64decode(v).decode() for k, v in data.items()}
        return found

    def _mounts(self, container: Obj, volumes: Mapping[str, Path]) -> dict[str, Path]:
        mounts = {}
        for mount in container.get("volumeMounts", []):
            folder = volumes.get(mount["name"])
            if folder is not None:
                mounts[mount["mountPath"]] = folder / mount["subPath"] if mount.get("subPath") else folder
        return mounts

    def _command(
        self, container: Obj, volumes: Mapping[str, Path], secrets: Mapping[str, Mapping[str, str]]
    ) -> tuple[list[str], dict[str, str], KnownImage]:
        image = self.images[container["image"]]
        mounts = self._mounts(container, volumes)
        env = container_env(container, self.pod, secrets, mounts)
        env.update(image.env)
        if image.host_env:
            env[image.host_env] = str(self.pod["status"]["podIP"])
        ip = str(self.pod["status"]["podIP"])
        argv = [pod_local(arg, ip) for arg in container_argv(container, image, env, mounts)]
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return argv, {**base, **env}, image

    async def _init_container(
        self, index: int, container: Obj, volumes: Mapping[str, Path], secrets: Mapping[str, Mapping[str, str]]
    ) -> None:
        """Run it until it succeeds, reporting each end on the pod's status, backing off between tries."""
        restarts, delay = 0, FIRST_RESTART_DELAY
        while True:
            argv, env, image = self._command(container, volumes, secrets)
            message_file = self.directory / f"{container['name']}.termination-log"
            message_file.unlink(missing_ok=True)
            if image.termination_log_arg:
                argv += [image.termination_log_arg, str(message_file)]
            log_file = self.directory / f"{container['name']}.log"
            started = _now()
            process = await _spawn(argv, env, self.directory, log_file, append=False)
            self.processes[container["name"]] = process
            code = await process.wait()
            self.processes.pop(container["name"], None)
            message = self._termination_message(container, message_file, log_file, code)
            terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "message": message,
                "startedAt": started,
                "finishedAt": _now(),
            }
            status: Obj = {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "restartCount": restarts,
            }
            if code == 0:
                status.update(ready=True, state={"terminated": terminated})
            else:
                status.update(
                    ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}}, lastState={"terminated": terminated}
                )
            await self._report(index, status)
            log.info("%s: init container %s exited %d: %s", self.name, container["name"], code, message[:200])
            if code == 0:
                return
            await asyncio.sleep(delay)
            restarts, delay = restarts + 1, min(delay * 2, MAX_RESTART_DELAY)

    @staticmethod
    def _termination_message(container: Obj, message_file: Path, log_file: Path, code: int) -> str:
        text = message_file.read_text(errors="replace") if message_file.exists() else ""
        if not text and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            text = "\n".join(log_file.read_text(errors="replace").splitlines()[-80:])
        return text[-MESSAGE_LIMIT:]

    async def _report(self, index: int, status: Obj) -> None:
        self.init_statuses[index : index + 1] = [status]
        metadata = self.pod["metadata"]
        # Only this field: the rest of the status is kwok's. The operator's client replaces whole
        # statuses (its own), so the farm sends its JSON patch through the client's request.
        patch = [{"op": "add", "path": "/status/initContainerStatuses", "value": self.init_statuses}]
        try:
            await self.api._request(
                "PATCH",
                kubeapi.POD.path(metadata["namespace"], metadata["name"], "status"),
                content=json.dumps(patch),
                headers={"Content-Type": "application/json-patch+json"},
            )
        except kubeapi.ApiError as error:
            log.warning("%s: could not report init container status: %s", self.name, error)

    async def _serve(
        self, container: Obj, volumes: Mapping[str, Path], secrets: Mapping[str, Mapping[str, str]]
    ) -> None:
        """A container, restarted with a backoff whenever it exits (restartPolicy: Always)."""
        delay = FIRST_RESTART_DELAY
        while True:
            argv, env, _ = self._command(container, volumes, secrets)
            log_file = self.directory / f"{container['name']}.log"
            log.info("%s: starting %s", self.name, " ".join(argv))
            process = await _spawn(argv, env, self.directory, log_file, append=True)
            self.processes[container["name"]] = process
            code = await process.wait()
            self.processes.pop(container["name"], None)
            log.warning(
                "%s: %s exited %d; restarting in %.0fs (%s)", self.name, container["name"], code, delay, log_file
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    async def _stop(self) -> None:
        await asyncio.gather(*(self._stop_one(process) for process in list(self.processes.values())))

    @staticmethod
    async def _stop_one(process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    def forget(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
