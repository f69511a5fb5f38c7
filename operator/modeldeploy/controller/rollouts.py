"""The shell around rollout/canary.py: gather what it decides from, out of the caches and the probes.

Only ModelDeployments that ask for a canary or autoRollback (or still carry a rollout on their
status) pay for it: the rest get "apply, no canary" without a render or a lookup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy.api.names import ROLLOUT_ACTION_ANNOTATION
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, RolloutCheck, RolloutStatus, ServerSpec
from modeldeploy.controller.cache import Key
from modeldeploy.controller.children import Track
from modeldeploy.controller.state import ControllerState
from modeldeploy.render import labels as lbl
from modeldeploy.render.children import Owner, render_deployment, template_revision
from modeldeploy.render.compare import contains
from modeldeploy.render.names import child_name, label_value
from modeldeploy.rollout.canary import CanaryReplicas, Decision, Observed, decide
from modeldeploy.status import compute as status_compute

ACTION_ANNOTATION = ROLLOUT_ACTION_ANNOTATION
Obj = dict[str, Any]
NO_ROLLOUT = Decision(status=None)


def previous_rollout(body: Mapping[str, Any]) -> RolloutStatus | None:
    raw = (body.get("status") or {}).get("rollout")
    if not isinstance(raw, dict):
        return None
    try:
        return RolloutStatus.read(raw)
    except ValidationError:
        return None


def decide_rollout(
    state: ControllerState, key: Key, body: Obj, spec: ModelDeploymentSpec, server: ServerSpec, owner: Owner
) -> Decision:
    previous = previous_rollout(body)
    rollout = spec.rollout
    watched = rollout is not None and (rollout.canary or rollout.auto_rollback)
    if not watched and previous is None:
        return NO_ROLLOUT
    name = child_name(owner.name)
    stable = state.deployments.get((key[0], name))
    desired = render_deployment(owner, spec, state.platform, server)
    template = desired["spec"]["template"]
    stable_template = (stable or {}).get("spec", {}).get("template")
    stable_status = (stable or {}).get("status") or {}
    canary_track = rollout is not None and rollout.canary
    pods = state.pods.by_label(key[0], name)
    health = state.health.get(key)
    report = status_compute.for_current_pods(health, pods) if health is not None else None
    stable_replicas = int((stable or {}).get("spec", {}).get("replicas", spec.replicas) or 0)
    rolled = status_compute.rollout_of(stable, None if spec.autoscaling else spec.replicas)
    revision = template_revision(desired)
    analysis: Sequence[RolloutCheck] = ()
    if canary_track and previous is not None and previous.revision == revision:
        evidence = state.canary_checks.get(key)
        if evidence is not None and evidence[0] == run_id(previous):
            analysis = evidence[1]
        elif _analysed(spec):  # not judged yet for this run: nothing may pass on the last run's evidence
            analysis = (RolloutCheck(name="analysis", state="Pending", message="no probe round of this canary yet"),)
    observed = Observed(
        revision=revision,
        version=spec.model.version,
        stable_matches=stable_template is not None and contains(stable_template, template),
        stable_serving=int(stable_status.get("readyReplicas", 0) or 0) > 0,
        stable_replicas=stable_replicas,
        stable_complete=rolled.complete,
        stable_version=version_of(stable_template) if stable_template else None,
        canary=_replicas(report, pods, spec.model.version, canary_only=canary_track),
        analysis=analysis,
        previous=previous,
        action=(body["metadata"].get("annotations") or {}).get(ACTION_ANNOTATION),
        now=datetime.now(UTC).replace(microsecond=0),
        route=_route(spec, stable_template),
    )
    return decide(rollout, observed)


def run_id(rollout: RolloutStatus) -> str:
    """One run of a canary: its template and the request that started it (a retry counts afresh)."""
    return f"{rollout.revision}/{rollout.action or ''}"


def _analysed(spec: ModelDeploymentSpec) -> bool:
    analysis = spec.rollout.analysis if spec.rollout is not None else None
    return analysis is not None and any(
        limit is not None for limit in (analysis.max_error_rate, analysis.max_latency_seconds, analysis.max_drift_score)
    )


def track_of(decision: Decision, revert_to: Obj | None = None) -> Track:
    return Track(stable=decision.stable, canary_replicas=decision.canary_replicas, revert_to=revert_to)


def _route(spec: ModelDeploymentSpec, stable_template: Mapping[str, Any] | None) -> str | None:
    """The HTTPRoute a new canary can be weighted on: named, and the stable's pods labelled for `<name>-stable`."""
    route = spec.rollout.http_route if spec.rollout is not None else None
    labels = ((stable_template or {}).get("metadata") or {}).get("labels") or {}
    if route is None or labels.get(lbl.TRACK_LABEL) != lbl.STABLE:
        return None
    return route.name


def version_of(template: Mapping[str, Any]) -> str | None:
    """The model version a pod template serves: the MODEL_VERSION the operator set on its server."""
    for container in (template.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "MODEL_VERSION" and "value" in env:
                return str(env["value"])
    return None


def _replicas(
    report: status_compute.HealthReport | None, pods: Sequence[Mapping[str, Any]], version: str, *, canary_only: bool
) -> CanaryReplicas:
    """The new template's replicas as probed: the canary's pods, or (a rolling update) every pod."""
    if report is None:
        return CanaryReplicas()
    names = {str((p.get("metadata") or {}).get("name")) for p in pods if not canary_only or lbl.is_canary(p)}
    wanted_label = label_value(version)
    new_pods = {
        str((p.get("metadata") or {}).get("name"))
        for p in pods
        if ((p.get("metadata") or {}).get("labels") or {}).get(lbl.VERSION_LABEL) == wanted_label
    }
    healthy = 0
    bad: list[str] = []
    wrong: list[str] = []
    for replica in report.replicas:
        if replica.pod not in names:
            continue
        served = replica.served_version
        if served is not None and served != version:
            if canary_only or replica.pod in new_pods:
                wrong.append(f"{replica.pod} serves {served}")
            continue
        if replica.healthy:
            healthy += 1
        elif replica.pod in report.starting:
            continue  # never healthy yet: a server still loading, judged by the deadline, not at once
        elif canary_only or replica.pod in new_pods:
            bad.append(f"{replica.pod}: {replica.error or 'not healthy'}")
    return CanaryReplicas(healthy=healthy, unhealthy=tuple(bad), wrong_version=tuple(wrong))
