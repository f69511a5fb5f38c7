"""Whether a pod's model fetch failed, and why, from the pod's status (pure).

The fetcher leaves one line in its termination message ("s3://models/iris/2.0.0: NoSuchKey");
the kubelet keeps it on the init container's status while it restarts the container with a
backoff. That line goes onto the ModelDeployment as Stalled / ModelFetchFailed: a person reads
the reason where they look, instead of in `kubectl describe pod`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from modeldeploy.api.v1alpha1 import ModelStatus, RuntimeReference
from modeldeploy.storage.location import COPY_CONTAINER, FETCH_CONTAINER

_MODEL_CONTAINERS = (FETCH_CONTAINER, COPY_CONTAINER)  # the init containers that bring the model

MAX_REASON = 4096  # what the kubelet keeps of a termination message


def _failed(terminated: Mapping[str, Any] | None) -> str | None:
    if not terminated or terminated.get("exitCode", 0) == 0:
        return None
    message = str(terminated.get("message") or "").strip()
    last = message.splitlines()[-1] if message else ""
    killed = terminated.get("reason") not in (None, "", "Error")
    if killed or not last:
        # OOMKilled, or killed before it could say why: the message is the log's tail, not a reason
        said = f"; last output: {last}" if last else ""
        return f"{terminated.get('reason') or 'failed'} (exit code {terminated.get('exitCode')}){said}"[:MAX_REASON]
    return last[:MAX_REASON]


def fetch_failure(pod: Mapping[str, Any]) -> str | None:
    """The fetch (or modelcar copy) container's reason while its last run failed; None once it succeeded."""
    for container in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if container.get("name") not in _MODEL_CONTAINERS:
            continue
        state = container.get("state") or {}
        if state.get("terminated"):
            return _failed(state["terminated"])
        return _failed((container.get("lastState") or {}).get("terminated"))  # waiting to retry, or retrying
    return None


def fetch_failures(pods: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """(pod, reason) for every pod whose model fetch is failing, pods being deleted left out."""
    failing = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        reason = None if metadata.get("deletionTimestamp") else fetch_failure(pod)
        if reason is not None:
            failing.append((str(metadata.get("name")), reason))
    return tuple(sorted(failing))


def fetch_report(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a pod's fetcher reported when it succeeded (its termination message: uri, sha256, files)."""
    for container in (pod.get("status") or {}).get("initContainerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if container.get("name") != FETCH_CONTAINER or terminated.get("exitCode") != 0:
            continue
        try:
            report = json.loads(terminated.get("message") or "")
        except ValueError:
            return None  # an older fetcher, or a message cut short: nothing to show
        return report if isinstance(report, dict) else None
    return None


def model_status(
    uri: str | None, pods: Iterable[Mapping[str, Any]], runtime: RuntimeReference | None = None
) -> ModelStatus | None:
    """status.model: the runtime serving the model, the URI the pods fetched, and its checksum
    when every fetching pod computed the same."""
    reports = _fetch_reports(uri, pods)
    if not reports:
        return None if runtime is None else ModelStatus(runtime=runtime)
    digests = {r.get("sha256") for r in reports}
    digest = digests.pop() if len(digests) == 1 else None
    counts = {r.get("files") for r in reports}
    files = counts.pop() if len(counts) == 1 else None
    return ModelStatus(
        runtime=runtime,
        uri=uri,
        sha256=digest if isinstance(digest, str) else None,  # pods that disagree: the object changed meanwhile
        files=files if isinstance(files, int) else None,
        fetched_replicas=len(reports),
    )


def _fetch_reports(uri: str | None, pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if uri is None:
        return []
    staying = [pod for pod in pods if not (pod.get("metadata") or {}).get("deletionTimestamp")]
    return [r for pod in staying if (r := fetch_report(pod)) is not None and r.get("uri") == uri]


def slim_fetch_status(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fetch container's status reduced to what `fetch_failure` reads (the pod cache keeps only this)."""
    kept = []
    for container in status.get("initContainerStatuses") or []:
        if container.get("name") not in _MODEL_CONTAINERS:
            continue
        entry: dict[str, Any] = {"name": container["name"]}
        for key in ("state", "lastState"):
            terminated = (container.get(key) or {}).get("terminated")
            if terminated:
                fields = {k: terminated[k] for k in ("exitCode", "reason", "message") if k in terminated}
                entry[key] = {"terminated": fields}
            elif container.get(key):
                entry[key] = {next(iter(container[key])): {}}  # waiting / running: the state's name is enough
        kept.append(entry)
    return kept
