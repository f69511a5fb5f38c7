"""One reconciler per child kind: desired (pure render) -> compare -> apply -> report.

The ModelDeployment's reconciler decides when to touch children (validation, holds, write
budget, owner confirmation); each child reconciler decides how its own kind converges. A new
child kind (a PodDisruptionBudget, a NetworkPolicy, a route) is one class here with its
render function, added to `CHILDREN`, and a test beside it; nothing else changes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from modeldeploy import kubeapi
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec, ServerSpec
from modeldeploy.controller.cache import ObjectCache, controller_uid
from modeldeploy.controller.state import ControllerState
from modeldeploy.render import labels as lbl
from modeldeploy.render.access import render_network_policy, render_pdb
from modeldeploy.render.authz import proxy_serving
from modeldeploy.render.children import (
    CANARY_SUFFIX,
    Owner,
    render_canary,
    render_deployment,
    render_hpa,
    render_service,
    render_track_service,
    with_hash,
)
from modeldeploy.render.compare import contains
from modeldeploy.render.exposure import render_http_route, render_ingress
from modeldeploy.render.keda import render_scaled_object
from modeldeploy.render.model import Platform
from modeldeploy.render.names import child_name

HANDOVER_MANAGER = "modeldeploy-replicas-handover"
Obj = dict[str, Any]


class NameConflict(Exception):
    """A child's name is taken by an object this ModelDeployment does not control."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"{kind} {name!r} already exists and is not controlled by this ModelDeployment; "
            "rename the ModelDeployment or remove that object "
            "(modeldeploy never takes over objects it did not create)"
        )


class KindNotServed(Exception):
    """The spec asks for a child whose kind this cluster does not serve (its CRDs are not installed)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Report:
    """What converging the children did, for the status, the Events and the log."""

    applied: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def add(self, other: Report) -> None:
        self.applied += other.applied
        self.corrected += other.corrected
        self.deleted += other.deleted


@dataclass(frozen=True)
class Track:
    """What the rollout decided for the Deployments in this reconcile (rollout/canary.py).

    `stable`: apply the spec's template to the stable Deployment, hold it as it is (a canary
    runs, or a rollback holds), or revert it to `revert_to`, the pod template that last served.
    """

    stable: Literal["apply", "hold", "revert"] = "apply"
    canary_replicas: int | None = None
    revert_to: Obj | None = None


@dataclass(frozen=True)
class Plan:
    """One child's desired state against the cache: `stale` when an apply is due."""

    child: Child
    desired: Obj | None
    live: Obj | None

    @property
    def stale(self) -> bool:
        return self.desired is not None and (self.live is None or not contains(self.live, self.desired))


class Child:
    """A child kind converged by server-side apply; subclasses add what their kind needs."""

    kind: kubeapi.Kind
    suffix: str = ""  # after the child name: "-canary" is the canary Deployment's
    read_before_create = True  # see _create

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        raise NotImplementedError

    def desired(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Obj | None:
        """What this reconcile asks for; None: nothing (a live one of ours is removed)."""
        return self.render(owner, spec, server, state.platform)

    def cache(self, state: ControllerState) -> ObjectCache:
        return state.cache_for(self.kind.kind)

    def plan(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Plan:
        """The cache holds every object carrying our label, so a miss means absent or foreign:
        the first apply tells which (see `_create`), and a new ModelDeployment costs no GET.
        """
        live = self.cache(state).get((owner.namespace, child_name(owner.name) + self.suffix))
        desired = self.desired(state, owner, spec, server, track)
        if live is not None and controller_uid(live) != owner.uid:
            if desired is not None:
                raise NameConflict(self.kind.kind, live["metadata"]["name"])
            live = None  # someone else's object by that name: never ours to remove
        return Plan(self, desired, live)

    async def converge(
        self, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner, *, converged_before: bool
    ) -> Report:
        report = Report()
        desired, live = plan.desired, plan.live
        assert desired is not None
        label = f"{self.kind.kind}/{desired['metadata']['name']}"
        correction = None
        if live is None and converged_before:
            correction = f"{label} was deleted"
        elif live is not None and _hash(live) == _hash(desired):
            correction = f"{label} was edited"  # what we applied last is there: someone changed the rest
        if live is not None:
            await self.before_update(api, live, desired)
        applied = await api.apply(desired) if live is not None else await self._create(api, owner, desired)
        self.cache(state).apply_event("MODIFIED", applied)
        report.applied.append(label)
        if correction is not None:  # only a correction that took effect is one
            report.corrected.append(correction)
        return report

    async def before_update(self, api: kubeapi.KubeApi, live: Obj, desired: Obj) -> None:
        """A kind's preparation of a live object before the apply that changes it."""

    async def remove(self, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner) -> Report:
        """What to do with a live child that is no longer desired (most kinds are always desired)."""
        return Report()

    async def _create(self, api: kubeapi.KubeApi, owner: Owner, child: Obj) -> Obj:
        """Apply a child the cache does not hold, without taking over a foreign object.

        The cache holds only objects with our label, so a miss is either nothing or someone
        else's object of that name, and only a read tells which: an apply cannot create without
        also merging into what exists (a foreign object whose fields do not clash with ours would
        be adopted, our controller reference added, and deleted with our ModelDeployment). One
        GET per creation, then an apply that is not forced, in case one appeared in between.
        A Deployment needs no read (`read_before_create`): our apply adds our label to its
        spec.selector, which the apiserver refuses to change on any existing Deployment.
        """
        name = child["metadata"]["name"]
        if self.read_before_create:
            found = await api.get(self.kind, owner.namespace, name)
            if found is not None:
                if controller_uid(found) != owner.uid:
                    raise NameConflict(self.kind.kind, name)
                return await api.apply(child)  # ours, out of the cache (a label removed by hand)
        try:
            return await api.apply(child, force=False)
        except kubeapi.ApiError as error:
            if error.status not in (409, 422):
                raise
            found = await api.get(self.kind, owner.namespace, name)
            if found is not None and controller_uid(found) != owner.uid:
                raise NameConflict(self.kind.kind, name) from None
            if found is None or error.status == 422:
                raise
            return await api.apply(child)  # ours, out of the cache (a label removed by hand)


class DeploymentChild(Child):
    kind = kubeapi.DEPLOYMENT
    read_before_create = False  # its selector cannot change: applying over a foreign one fails (422)

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj:
        return render_deployment(owner, spec, platform, server)

    def plan(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Plan:
        """The stable Deployment: held while a canary runs or a rollback holds, so it keeps serving what it served."""
        plan = super().plan(state, owner, spec, server, track)
        if plan.live is None or track.stable == "apply":
            return plan
        if plan.desired is None:
            return plan
        # Only the pod template is held (or reverted): replicas, autoscaling's handover, the strategy
        # and hand-edit corrections still apply while a canary runs or a rollback holds.
        template = track.revert_to if track.stable == "revert" and track.revert_to is not None else None
        if template is None:
            template = copy.deepcopy(plan.live["spec"]["template"])
            template.get("metadata", {}).pop("creationTimestamp", None)
        desired = copy.deepcopy(plan.desired)
        desired["spec"]["template"] = copy.deepcopy(template)
        desired["metadata"]["annotations"].pop(lbl.APPLIED_HASH, None)
        # the Deployment's own labels say what its pods serve, not what the spec asks for
        for key in (lbl.VERSION_LABEL, lbl.MODEL_LABEL):
            value = (template.get("metadata", {}).get("labels") or {}).get(key)
            if value is not None:
                desired["metadata"]["labels"][key] = value
        return Plan(self, with_hash(desired), plan.live)

    async def before_update(self, api: kubeapi.KubeApi, live: Obj, desired: Obj) -> None:
        """Stop owning spec.replicas without resetting it, so the HPA takes over smoothly.

        With autoscaling our apply leaves replicas out, which would delete the field (back to
        1 replica) while we are its only manager; a second manager first co-owns the current
        value, then our apply lets go.
        """
        if "replicas" in desired["spec"] or not _we_own_replicas(live):
            return
        await _hand_over_replicas(api, live, live["spec"].get("replicas", 1))


def proxy_serving_now(state: ControllerState, owner: Owner) -> bool:
    """Whether the stable Deployment's pods all have the authorizing proxy (render.authz.proxy_serving)."""
    return proxy_serving(state.deployments.get((owner.namespace, child_name(owner.name))))


class ServiceChild(Child):
    kind = kubeapi.SERVICE

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj:
        return render_service(owner, spec, server)

    def desired(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Obj | None:
        return render_service(owner, spec, server, proxy_serving_now(state, owner))


class TrackServiceChild(Child):
    """`<name>-stable` / `<name>-canary`: present while spec.rollout.httpRoute is set."""

    kind = kubeapi.SERVICE

    def __init__(self, track: str) -> None:
        self.track = track
        self.suffix = f"-{track}"

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        return render_track_service(owner, spec, server, self.track)

    def desired(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Obj | None:
        return render_track_service(owner, spec, server, self.track, proxy_serving_now(state, owner))

    async def remove(self, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner) -> Report:
        return await _delete_owned(self, api, state, plan, owner)


class CanaryChild(Child):
    """The canary Deployment: present only while a canary runs (or a promotion completes)."""

    kind = kubeapi.DEPLOYMENT
    suffix = CANARY_SUFFIX
    read_before_create = False

    def desired(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Obj | None:
        if track.canary_replicas is None:
            return None
        return render_canary(render_deployment(owner, spec, state.platform, server), track.canary_replicas)

    async def converge(
        self, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner, *, converged_before: bool
    ) -> Report:
        # a canary appears when a rollout (or a retry) decides so, not only with a new generation
        existed = converged_before and plan.live is not None
        return await super().converge(api, state, plan, owner, converged_before=existed)

    async def remove(self, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner) -> Report:
        return await _delete_owned(self, api, state, plan, owner)


class OptionalChild(Child):
    """A child present only while its spec section asks for it; removed (ours only) when it no longer does.

    `needs` names what must be installed for a kind the apiserver may not serve (a CRD's), and
    the reason the status gives while it is not.
    """

    needs: tuple[str, str] | None = None

    def plan(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Plan:
        plan = super().plan(state, owner, spec, server, track)
        if plan.desired is not None and self.needs is not None and not self.cache(state).served:
            reason, what = self.needs
            raise KindNotServed(reason, f"{what} is not installed: the apiserver serves no {self.kind.plural}")
        return plan

    async def remove(self, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner) -> Report:
        return await _delete_owned(self, api, state, plan, owner)


class NetworkPolicyChild(OptionalChild):
    kind = kubeapi.NETWORK_POLICY

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        return render_network_policy(owner, spec, server, platform)

    def desired(
        self, state: ControllerState, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, track: Track
    ) -> Obj | None:
        return render_network_policy(owner, spec, server, state.platform, proxy_serving_now(state, owner))


class DisruptionBudgetChild(OptionalChild):
    kind = kubeapi.PDB

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        return render_pdb(owner, spec)


class IngressChild(OptionalChild):
    kind = kubeapi.INGRESS

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        return render_ingress(owner, spec, server)


class HttpRouteChild(OptionalChild):
    kind = kubeapi.HTTP_ROUTE
    needs = ("GatewayAPINotInstalled", "exposure.httpRoute needs the Gateway API: its CRDs")

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        return render_http_route(owner, spec, server)


class AutoscalerChild(OptionalChild):
    """The HPA or KEDA's ScaledObject: the other one goes first, so two autoscalers never hold one Deployment."""

    def other(self) -> Child:
        raise NotImplementedError

    async def converge(
        self, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner, *, converged_before: bool
    ) -> Report:
        other = self.other()
        live = other.cache(state).get((owner.namespace, child_name(owner.name) + other.suffix))
        report = await _delete_owned(other, api, state, Plan(other, None, live), owner)
        await self.before_apply(api, state, owner, plan)
        report.add(await super().converge(api, state, plan, owner, converged_before=converged_before))
        return report

    async def before_apply(self, api: kubeapi.KubeApi, state: ControllerState, owner: Owner, plan: Plan) -> None:
        """What the Deployment needs before this autoscaler takes it."""


class HpaChild(AutoscalerChild):
    kind = kubeapi.HPA

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        return render_hpa(owner, spec)

    def other(self) -> Child:
        return SCALED_OBJECT_CHILD

    async def before_apply(self, api: kubeapi.KubeApi, state: ControllerState, owner: Owner, plan: Plan) -> None:
        """An HPA does not scale a Deployment at zero (ScalingDisabled), and KEDA leaves it there when its
        ScaledObject goes: coming from keda, the Deployment is set to the HPA's minimum first."""
        deployment = state.deployments.get((owner.namespace, child_name(owner.name)))
        if deployment is None or plan.desired is None or deployment["spec"].get("replicas", 1) != 0:
            return
        await _hand_over_replicas(api, deployment, plan.desired["spec"]["minReplicas"])


class ScaledObjectChild(AutoscalerChild):
    kind = kubeapi.SCALED_OBJECT
    needs = ("KedaNotInstalled", "autoscaling.engine keda needs KEDA: its CRDs")

    def render(self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, platform: Platform) -> Obj | None:
        return render_scaled_object(owner, spec)

    def other(self) -> Child:
        return HPA_CHILD


HPA_CHILD = HpaChild()
SCALED_OBJECT_CHILD = ScaledObjectChild()

CHILDREN: tuple[Child, ...] = (
    DeploymentChild(),
    CanaryChild(),
    ServiceChild(),
    TrackServiceChild(lbl.STABLE),
    TrackServiceChild(lbl.CANARY),
    HPA_CHILD,
    SCALED_OBJECT_CHILD,
    NetworkPolicyChild(),
    DisruptionBudgetChild(),
    IngressChild(),
    HttpRouteChild(),
)


async def _delete_owned(child: Child, api: kubeapi.KubeApi, state: ControllerState, plan: Plan, owner: Owner) -> Report:
    """Delete a child no longer asked for: ours only, and only the one we saw."""
    live = plan.live
    if live is None or controller_uid(live) != owner.uid:
        return Report()
    name = live["metadata"]["name"]
    if not await api.delete(child.kind, owner.namespace, name, uid=live["metadata"]["uid"]):
        return Report()
    child.cache(state).apply_event("DELETED", live)
    return Report(deleted=[f"{child.kind.kind}/{name}"])


async def _hand_over_replicas(api: kubeapi.KubeApi, deployment: Obj, replicas: int) -> None:
    """Set a Deployment's replicas under a manager of their own, which the autoscaler then takes over."""
    metadata = deployment["metadata"]
    await api.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
            "spec": {"replicas": replicas},
        },
        field_manager=HANDOVER_MANAGER,
    )


def _hash(obj: Obj) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(lbl.APPLIED_HASH)
    return None if value is None else str(value)


def _we_own_replicas(live: Obj) -> bool:
    for entry in live["metadata"].get("managedFields", []) or []:
        ours = entry.get("manager") == kubeapi.FIELD_MANAGER and entry.get("operation") == "Apply"
        if ours and "f:replicas" in entry.get("fieldsV1", {}).get("f:spec", {}):
            return True
    return False
