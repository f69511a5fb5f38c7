"""One reconcile of one ModelDeployment: render, compare, apply what differs, write status.

Level-triggered: it reads the latest ModelDeployment and children from the watch caches
and converges them, whatever event brought it here. It writes nothing when nothing
differs, which is what makes an idle cluster and a periodic resync cost zero writes.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from modeldeploy import kubeapi, metrics
from modeldeploy.api.conditions import READY, STALLED
from modeldeploy.api.v1alpha1 import ConfigDriftStatus, ModelDeploymentSpec, ServerSpec
from modeldeploy.controller.cache import Key, controller_uid
from modeldeploy.controller.children import CHILDREN, KindNotServed, NameConflict, Report, proxy_serving_now
from modeldeploy.controller.events import EventRecorder
from modeldeploy.controller.limits import (
    EVENTS_BURST,
    EVENTS_PER_MINUTE,
    Failure,
    WriteBudget,
    is_stalled,
    record_failure,
    stalled_retry_in,
)
from modeldeploy.controller.rollouts import decide_rollout, previous_rollout, run_id, track_of, version_of
from modeldeploy.controller.routes import RouteProblem, sync_route
from modeldeploy.controller.state import ControllerState
from modeldeploy.render import labels as lbl
from modeldeploy.render.children import Owner, render_deployment, service_url
from modeldeploy.render.compare import contains
from modeldeploy.render.exposure import exposure_url
from modeldeploy.render.names import child_name
from modeldeploy.render.runtime import Resolved, RuntimeProblem
from modeldeploy.rollout.canary import Decision
from modeldeploy.status import compute as status_compute
from modeldeploy.status.artifacts import fetch_failures, model_status
from modeldeploy.status.conditions import find
from modeldeploy.status.events import transition_events
from modeldeploy.status.history import Serving
from modeldeploy.storage.location import InvalidLocation

log = logging.getLogger("modeldeploy.reconciler")
_RS_REVISION = "deployment.kubernetes.io/revision"
TERMINATING_MEMORY_SECONDS = 60.0
Obj = dict[str, Any]


class ProbeLoops(Protocol):
    """What the reconciler asks of the probe loops (controller/probes.py): start, stop, alive."""

    def ensure(self, key: Key, spec: ModelDeploymentSpec) -> None: ...

    def stop(self, key: Key) -> None: ...

    def running(self, key: Key) -> bool: ...


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Throttled(Exception):
    """The object has spent its write budget: look again in `wait` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"write budget spent; retry in {wait:.1f}s")
        self.wait = wait


# How long the way to a state (rollout counts, replica detail) may wait to be folded into the
# next write. What anyone waits on is never held (`status_compute.can_be_folded`); the counts in
# `kubectl get md` lag by at most this much, and a one-replica rollout costs two writes, not four.
COALESCE_SECONDS = 10.0


class Coalesced(Exception):
    """A status write that only reports rollout progress, held back to be folded into the next."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"progress-only status write deferred {wait:.1f}s")
        self.wait = wait


class Stalled(Exception):
    """The reconcile cannot proceed until a person changes something."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.problem = status_compute.Problem(reason, message)


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problem: status_compute.Problem | None = None
    namespace_terminating: bool = False
    owner_gone: bool = False
    throttled: bool = False
    retry_in: float | None = None
    body: Obj | None = None  # the owner as freshly read, when it was
    rollout: Decision | None = None  # what the rollout decided (None: not reached, the status keeps its own)

    def add(self, report: Report) -> None:
        self.applied += report.applied
        self.corrected += report.corrected
        self.deleted += report.deleted


class Reconciler:
    def __init__(
        self,
        api: kubeapi.KubeApi,
        state: ControllerState,
        *,
        verify_pull_secrets: bool = True,
        probes: ProbeLoops | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self._clock = clock  # monotonic seconds; tests pass one they can move
        self.state = state
        self.verify_pull_secrets = verify_pull_secrets
        self.probes = probes
        # namespace -> monotonic time until which it is known to be terminating
        self._terminating: dict[str, float] = {}
        self.budget: WriteBudget[Key] = WriteBudget()
        self.event_budget: WriteBudget[Key] = WriteBudget(per_minute=EVENTS_PER_MINUTE, burst=EVENTS_BURST)
        self.events = EventRecorder(api)
        self._failures: dict[Key, Failure] = {}
        # A Stalled object's generation, the monotonic time of its next attempt, and its problem:
        # resyncs and pod events must not turn the backoff back into an apply every few seconds.
        # Held with the runtimes' epoch too: a fixed runtime is a change a person made, like a new generation.
        self._holds: dict[Key, tuple[int, int, float, status_compute.Problem]] = {}
        self._status_written_at: dict[Key, float] = {}  # monotonic time of each object's last status write
        self._settled: dict[Key, tuple[Any, ...]] = {}  # what an object's last no-op reconcile was computed from
        self._reverts: dict[Key, tuple[str, Obj]] = {}  # (rolled-back revision, the template reverted to)

    async def reconcile(self, key: Key) -> float | None:
        """Converge one ModelDeployment; returns when to look again, if before the next event."""
        body = self.state.models.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self._forget(key)
            return None
        if self._terminating.get(key[0], 0.0) > self._clock():
            metrics.RECONCILES.labels(result="skipped").inc()
            return None  # its namespace is being deleted: every child deletion would wake us for nothing
        inputs = self._inputs(key, body)
        if self._settled.get(key) == inputs:
            metrics.RECONCILES.labels(result="unchanged").inc()
            return None
        self._settled.pop(key, None)
        started = time.perf_counter()
        result = "error"
        try:
            outcome = await self._converge(body)
            result, retry, settled = await self._conclude(key, body, outcome)
            if settled:
                self._settled[key] = inputs
            return retry
        finally:
            metrics.RECONCILES.labels(result=result).inc()
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    async def _conclude(self, key: Key, body: Obj, outcome: Outcome) -> tuple[str, float | None, bool]:
        """Write the status the outcome calls for.

        Returns the reconcile's result, when to look again, and whether nothing at all was due
        (the same inputs would compute the same nothing: the next resync may skip them).
        """
        if outcome.namespace_terminating or outcome.owner_gone:
            if outcome.namespace_terminating:
                self._terminating[key[0]] = self._clock() + TERMINATING_MEMORY_SECONDS
            return "skipped", None, False
        if outcome.throttled:
            return "throttled", outcome.retry_in, False
        result = "stalled" if outcome.problem else ("applied" if outcome.applied or outcome.deleted else "unchanged")
        try:
            wrote_status = await self._write_status(outcome.body or body, outcome)
        except Throttled as throttled:
            return "throttled", throttled.wait, False
        except Coalesced as coalesced:
            return "coalesced", coalesced.wait, False
        except kubeapi.ApiError as error:
            if error.status != 404:
                raise
            # deleted between the read and the status write (say, right after creation): news, not trouble
            log.info("%s/%s was deleted meanwhile; nothing to report", key[0], key[1])
            return "skipped", None, False
        _log_writes(key, body, outcome, wrote_status)
        settled = result == "unchanged" and wrote_status is None and outcome.retry_in is None
        return result, outcome.retry_in, settled

    def _inputs(self, key: Key, body: Obj) -> tuple[Any, ...]:
        """Everything a reconcile of `key` reads, by version: equal inputs give the same outcome.

        A periodic resync reconciles every object; at a thousand converged ones, each every 10 s,
        recomputing what nothing had changed was most of the operator's CPU. Objects compare by
        resourceVersion, probe reports by identity (a round stores a new one), and a probe loop
        that has ended makes the inputs new, so the reconcile that restarts it runs.
        """
        namespace, name = key[0], child_name(key[1])

        def version(obj: Obj | None) -> object:
            return None if obj is None else obj["metadata"].get("resourceVersion")

        probes_alive = self.probes is None or self.probes.running(key)
        return (
            version(body),
            tuple(version(child.cache(self.state).get((namespace, name + child.suffix))) for child in CHILDREN),
            tuple(cache.served for cache in (self.state.http_routes, self.state.scaled_objects)),
            tuple(version(pod) for pod in self.state.pods.by_label(namespace, name)),
            _Same(self.state.health.get(key)),
            _Same(self.state.data_drift.get(key)),
            _Same(self.state.canary_checks.get(key)),
            probes_alive,
            self.state.runtimes.epoch(),
        )

    def _forget(self, key: Key) -> None:
        if self.probes is not None:
            self.probes.stop(key)
        self.state.forget(key)
        self.budget.forget(key)
        self.event_budget.forget(key)
        self._failures.pop(key, None)
        self._holds.pop(key, None)
        self._status_written_at.pop(key, None)
        self._settled.pop(key, None)
        self._reverts.pop(key, None)
        metrics.forget_model(*key)

    def _spend(self, key: Key, writes: int = 1) -> None:
        """Take `writes` from the object's write budget, or defer the whole reconcile."""
        now = self._clock()
        wait = self.budget.wait(key, now, writes)
        if wait > 0:
            raise Throttled(wait)
        self.budget.spend(key, now, writes)

    async def _confirm_owner(self, body: Obj) -> Obj | None:
        """The ModelDeployment as the apiserver has it now, or None when it is gone.

        The cache can still hold an owner deleted while the watch was down; applying children
        for it would create objects the garbage collector deletes at once, and the next
        reconcile would report those deletions as hand edits. One GET before writing settles it.
        """
        metadata = body["metadata"]
        fresh = await self.api.get(kubeapi.MODEL_DEPLOYMENT, metadata["namespace"], metadata["name"])
        if fresh is None or fresh["metadata"].get("uid") != metadata.get("uid"):
            log.info("%s/%s no longer exists; dropping it", metadata["namespace"], metadata["name"])
            self.state.models.apply_event("DELETED", body)
            self._forget((metadata["namespace"], metadata["name"]))
            return None
        self.state.models.apply_event("MODIFIED", fresh)
        return fresh

    # ---- children -----------------------------------------------------------------------
    async def _converge(self, body: Obj) -> Outcome:
        outcome = Outcome()
        metadata = body["metadata"]
        owner = Owner(metadata["name"], metadata["namespace"], metadata["uid"])
        key = (owner.namespace, owner.name)
        try:
            spec = self.state.spec(body)
            server = self.state.resolved(body).server
            if self.probes is not None:
                self.probes.ensure(key, spec)
            if not await self._converge_children(owner, body, spec, server, outcome):
                return outcome
            self._failures.pop(key, None)
            self._holds.pop(key, None)
        except ValidationError as error:
            outcome.problem = status_compute.Problem("InvalidSpec", _validation_message(error))
        except Stalled as stalled:
            outcome.problem = stalled.problem
        except RuntimeProblem as problem:
            outcome.problem = status_compute.Problem(problem.reason, problem.message)
        except NameConflict as conflict:
            outcome.problem = status_compute.Problem("ChildNameConflict", str(conflict))
        except KindNotServed as missing:
            outcome.problem = status_compute.Problem(missing.reason, missing.message)
        except InvalidLocation as invalid:  # the schema's pattern let it through; the parts do not hold
            outcome.problem = status_compute.Problem("InvalidModelURI", f"spec.model.uri: {invalid}")
        except Throttled as throttled:
            outcome.throttled = True
            outcome.retry_in = throttled.wait
            log.warning("%s/%s is writing too often; next reconcile in %.0fs", key[0], key[1], throttled.wait)
            return outcome
        except kubeapi.ApiError as error:
            if self._api_failure(key, int(metadata.get("generation", 0)), error, outcome):
                return outcome
        await self._announce(outcome.body or body, outcome)
        return outcome

    async def _converge_children(
        self, owner: Owner, body: Obj, spec: ModelDeploymentSpec, server: ServerSpec, outcome: Outcome
    ) -> bool:
        """Apply the children that differ, delete the ones no longer declared; False: stop here."""
        key = (owner.namespace, owner.name)
        weighed = spec.rollout.http_route if spec.rollout is not None else None
        exposed = spec.exposure is not None and spec.exposure.http_route is not None
        if exposed and weighed is not None and weighed.name == child_name(owner.name):
            # two writers of one route: the exposure's apply and the canary's weights would undo each other
            raise Stalled(
                "HTTPRouteConflict",
                f"rollout.httpRoute names {weighed.name!r}, the HTTPRoute spec.exposure.httpRoute makes: "
                "name another route for the canary's weights, or remove one of the two",
            )
        decision = decide_rollout(self.state, key, body, spec, server, owner)
        outcome.rollout = decision
        if decision.canary_replicas is not None and decision.status is not None:
            self.state.canary_revision[key] = run_id(decision.status)
        else:
            self.state.canary_revision.pop(key, None)
        if decision.rolled_back is not None:
            outcome.problem = status_compute.Problem("RolledBack", decision.rolled_back)
        if decision.wake_in is not None:
            outcome.retry_in = decision.wake_in if outcome.retry_in is None else min(outcome.retry_in, decision.wake_in)
        revert_to = await self._revert_template(owner, spec, server, decision) if decision.stable == "revert" else None
        track = track_of(decision, revert_to)
        plans = [child.plan(self.state, owner, spec, server, track) for child in CHILDREN]
        stale = [plan for plan in plans if plan.stale]
        if stale or not _converged_before(body):
            # only on the way to an apply: a GET per pull secret on every resync was N reads per period
            await self._check_pull_secrets(owner, spec)
        if stale and self._held(key, body, outcome):
            return False
        if stale:
            self._spend(key, len(stale))
        if stale and _applied_before(body):
            # Children of a converged owner changed or vanished: a hand edit, or the garbage
            # collector acting for an owner deleted while the watch was down. Only the
            # apiserver can tell which; a new or changed owner needs no such check.
            fresh = await self._confirm_owner(body)
            if fresh is None:
                outcome.owner_gone = True
                return False
            outcome.body = body = fresh
        converged = _applied_before(body)
        # Children are independent: applied side by side, every outcome kept, the first error raised.
        results = await asyncio.gather(
            *(p.child.converge(self.api, self.state, p, owner, converged_before=converged) for p in stale),
            return_exceptions=True,
        )
        for result in results:
            if not isinstance(result, BaseException):
                outcome.add(result)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        await self._weigh_route(owner, body, spec, decision)
        for plan in plans:
            if plan.desired is None:
                outcome.add(await plan.child.remove(self.api, self.state, plan, owner))
        return True

    async def _weigh_route(self, owner: Owner, body: Obj, spec: ModelDeploymentSpec, decision: Decision) -> None:
        """A canary's weight on its HTTPRoute; the route as its owner wrote it otherwise (once the services exist)."""
        named = spec.rollout.http_route.name if spec.rollout is not None and spec.rollout.http_route else None
        carried = decision.status.http_route if decision.status is not None else None
        previous = previous_rollout(body)
        route = named or carried or (previous.http_route if previous is not None else None)
        if route is None:
            return
        weight = decision.route_weight if named is not None and named == carried else None
        try:
            if await sync_route(self.api, owner.namespace, route, child_name(owner.name), weight):
                log.info("%s/%s: HTTPRoute %s weighted: canary %s", owner.namespace, owner.name, route, weight)
        except RouteProblem as problem:
            if named is None:
                return  # no longer ours to weigh
            raise Stalled(problem.reason, str(problem)) from None

    async def _revert_template(
        self, owner: Owner, spec: ModelDeploymentSpec, server: ServerSpec, decision: Decision
    ) -> Obj | None:
        """The pod template that served before the rolled-back one: its ReplicaSet is still there.

        The Deployment controller keeps old ReplicaSets (revisionHistoryLimit) precisely so a
        rollout can be undone; read once per rollback, then remembered.
        """
        key = (owner.namespace, owner.name)
        rollout = decision.status
        if rollout is None:
            return None
        held = self._reverts.get(key)
        if held is not None and held[0] == rollout.revision:
            return held[1]
        name = child_name(owner.name)
        stable = self.state.deployments.get((owner.namespace, name))
        if stable is None:
            return None
        listed = await self.api.list(kubeapi.REPLICA_SET, owner.namespace, f"{lbl.NAME_LABEL}={name}")
        stable_uid = stable["metadata"].get("uid")
        bad = render_deployment(
            owner,
            self.state.spec(self.state.models.get(key) or {}),
            self.state.platform,
            self.state.resolved(self.state.models.get(key) or {}).server,
        )["spec"]["template"]
        # every earlier template but the rolled-back one; the served version's first, when it is known
        earlier = [
            rs
            for rs in listed.get("items") or []
            if controller_uid(rs) == stable_uid and not contains(rs["spec"]["template"], bad)
        ]
        served = [rs for rs in earlier if version_of(rs["spec"]["template"]) == rollout.stable_version]
        candidates = served or earlier
        if not candidates:
            log.warning("%s/%s: no earlier ReplicaSet left to roll back to", *key)
            return None
        newest = max(candidates, key=lambda rs: int(rs["metadata"].get("annotations", {}).get(_RS_REVISION, "0") or 0))
        template: Obj = copy.deepcopy(newest["spec"]["template"])
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        template.get("metadata", {}).pop("creationTimestamp", None)
        self._reverts[key] = (rollout.revision, template)
        return template

    def _held(self, key: Key, body: Obj, outcome: Outcome) -> bool:
        """Whether a Stalled generation is still waiting out its backoff (the same spec fails the same way)."""
        hold = self._holds.get(key)
        if hold is None or (hold[0], hold[1]) != (body["metadata"].get("generation"), self.state.runtimes.epoch()):
            return False
        if self._clock() >= hold[2]:
            return False
        outcome.problem = hold[3]
        outcome.retry_in = hold[2] - self._clock()
        return True

    def _api_failure(self, key: Key, generation: int, error: kubeapi.ApiError, outcome: Outcome) -> bool:
        """Classify a failed call: True when the reconcile should end without a status write.

        A namespace being deleted ends it quietly; a failure retrying will not fix (after
        `limits.is_stalled`) becomes Stalled with a backoff; anything else is raised to the queue.
        """
        if error.status == 403 and "being terminated" in error.message:
            outcome.namespace_terminating = True  # the namespace controller is deleting everything
            return True
        failure = record_failure(self._failures.get(key), f"{error.status} {error.message}")
        self._failures[key] = failure
        if not is_stalled(failure, error.status):
            raise error
        reason = "Forbidden" if error.status == 403 else "ApplyRejected"
        outcome.problem = status_compute.Problem(reason, error.message)
        outcome.retry_in = stalled_retry_in(failure)
        self._holds[key] = (generation, self.state.runtimes.epoch(), self._clock() + outcome.retry_in, outcome.problem)
        return False

    async def _check_pull_secrets(self, owner: Owner, spec: ModelDeploymentSpec) -> None:
        if not self.verify_pull_secrets:
            return
        for index, ref in enumerate(spec.image_pull_secrets or []):
            try:
                found = await self.api.get(kubeapi.SECRET, owner.namespace, ref.name)
            except kubeapi.ApiError as error:
                if error.status == 403:  # not allowed to look: the kubelet will tell
                    return
                raise
            if found is None:
                raise Stalled(
                    "ImagePullSecretNotFound",
                    f"spec.imagePullSecrets[{index}].name: Secret {ref.name!r} does not exist in namespace "
                    f"{owner.namespace!r}; create it or remove the reference",
                )

    async def _event(self, body: Obj, type_: str, reason: str, message: str) -> None:
        """Events are for people; failing to post one must never fail or repeat a reconcile."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        now = self._clock()
        if self.event_budget.wait(key, now) > 0:
            log.info("dropped event %s on %s/%s: event budget spent", reason, *key)
            return
        self.event_budget.spend(key, now)
        await self.events.record(body, type_, reason, message)

    async def _announce(self, body: Obj, outcome: Outcome) -> None:
        spec = self.state.spec_or_none(body)
        ignored = _ignored_replicas(spec)
        if ignored is not None and not _converged_before(body):  # said once for each new generation
            await self._event(body, "Warning", "ScaleIgnored", status_compute.ignored_replicas_message(ignored))
        for what in outcome.corrected:
            await self._event(body, "Warning", "ConfigDriftCorrected", f"{what} by hand; restored the declared state")
        if outcome.corrected:
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            record = self.state.config_drift.setdefault(key, _config_drift_from_status(body))
            record.corrections = (record.corrections or 0) + len(outcome.corrected)
            record.last_correction_time = datetime.now(UTC)
            record.last_corrected_child = outcome.corrected[-1].split(" ")[0]
            metrics.CONFIG_DRIFT_CORRECTIONS.labels(namespace=key[0], name=key[1]).inc(len(outcome.corrected))
        changed = [c for c in outcome.applied if not any(c in what for what in outcome.corrected)]
        if changed and (body.get("status") or {}).get("observedGeneration") is not None:  # not a routine first creation
            await self._event(body, "Normal", "ChildrenApplied", "applied " + ", ".join(changed))
        if outcome.deleted:
            await self._event(body, "Normal", "ChildrenDeleted", "deleted " + ", ".join(outcome.deleted))

    # ---- status -------------------------------------------------------------------------
    def observe(
        self, body: Obj, problem: status_compute.Problem | None, decision: Decision | None = None
    ) -> status_compute.Observation:
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        spec_dict = body.get("spec", {})
        spec = self.state.spec_or_none(body)
        resolved = self._resolved_or_none(body)
        owner = Owner(metadata["name"], metadata["namespace"], metadata["uid"])
        name = child_name(owner.name)
        record = self.state.config_drift.get(key) or _config_drift_from_status(body)
        pods = self.state.pods.by_label(owner.namespace, name)
        # not decided this time (the spec is invalid, a hold): the status keeps the rollout it states
        rollout = decision.status if decision is not None else previous_rollout(body)
        return status_compute.Observation(
            generation=int(metadata.get("generation", 0)),
            expected_version=str(spec_dict.get("model", {}).get("version", "")),
            desired_replicas=None if spec is None or spec.autoscaling is not None else spec.replicas,
            ignored_replicas=_ignored_replicas(spec),
            probing_enabled=spec is not None and spec.probing.enabled,
            problem=problem,
            deployment=self.state.deployments.get((owner.namespace, name)),
            selector=lbl.selector_string(lbl.selector_labels(name)),
            # unresolved (no runtime now): the Service is still there, and so is its address
            url=(spec is not None and exposure_url(spec))
            or (
                service_url(owner, resolved.server, spec if proxy_serving_now(self.state, owner) else None)
                if resolved is not None
                else (body.get("status") or {}).get("url")
            ),
            may_scale_to_zero=spec is not None
            and spec.autoscaling is not None
            and spec.autoscaling.engine == "keda"
            and spec.autoscaling.min_replicas == 0,
            health=self._current_health(key, name),
            data_drift=self.state.data_drift.get(key),
            config_drift=record,
            fetch_failures=fetch_failures(pods),
            model=model_status(
                spec.model.uri if spec is not None else None, pods, resolved.runtime if resolved is not None else None
            ),
            serving=_serving(spec, resolved),
            previous_status=body.get("status") or {},
            rollout=rollout,
            # the stable's version is no drift only while a canary runs beside it or a rollback holds it
            other_versions=frozenset(
                {rollout.stable_version}
                if rollout is not None
                and rollout.stable_version is not None
                and rollout.phase in ("Progressing", "RolledBack")
                else set()
            ),
        )

    def _resolved_or_none(self, body: Obj) -> Resolved | None:
        try:
            return self.state.resolved(body)
        except (ValidationError, RuntimeProblem):
            return None

    def _current_health(self, key: Key, child: str) -> status_compute.HealthReport | None:
        """The last round's report, as it stands for the pods there are now."""
        report = self.state.health.get(key)
        if report is None:
            return None
        return status_compute.for_current_pods(report, self.state.pods.by_label(key[0], child))

    async def _write_status(self, body: Obj, outcome: Outcome) -> dict[str, Any] | None:
        """Write the status if it changed; returns what was written."""
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        observation = self.observe(body, outcome.problem, outcome.rollout)
        new = status_compute.status_body(status_compute.compute_status(observation, now=utcnow()))
        old = body.get("status") or {}
        comparable = status_compute.without_volatile(new)
        if comparable == status_compute.without_volatile(old) or comparable == self.state.last_written_status.get(key):
            return None
        since = self._clock() - self._status_written_at.get(key, -COALESCE_SECONDS)
        if since < COALESCE_SECONDS and status_compute.can_be_folded(old, new):
            raise Coalesced(COALESCE_SECONDS - since)
        self._spend(key)
        written = await self.api.patch_status(kubeapi.MODEL_DEPLOYMENT, key[0], key[1], new)
        self._status_written_at[key] = self._clock()
        self.state.models.apply_event("MODIFIED", written)
        self.state.last_written_status[key] = comparable
        created = metadata.get("generation") == 1
        for type_, reason, message in transition_events(old, new, created=created):
            await self._event(body, type_, reason, message)
        if outcome.rollout is not None and old.get("rollout") != new.get("rollout"):
            for type_, reason, message in outcome.rollout.events:  # said once: the write carries the step
                log.info("%s/%s: %s: %s", key[0], key[1], reason, message)
                await self._event(body, type_, reason, message)
        return new


class _Same:
    """Equal only to a wrapper of the very same object (ids alone can be reused after a free)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def _log_writes(key: Key, body: Obj, outcome: Outcome, status: dict[str, Any] | None) -> None:
    """One INFO line per reconcile that wrote something: what, and why."""
    if not (outcome.applied or outcome.deleted or status is not None):
        return
    parts: list[str] = []
    if outcome.corrected:
        parts.append("restored " + ", ".join(outcome.corrected))
    elif outcome.applied:
        generation = body["metadata"].get("generation")
        why = "drifted" if _applied_before(body) else f"new generation {generation}"
        parts.append(f"applied {', '.join(outcome.applied)} ({why})")
    if outcome.deleted:
        parts.append("deleted " + ", ".join(outcome.deleted))
    if status is not None:
        ready = find(status.get("conditions"), READY) or {}
        parts.append(f"status: Ready={ready.get('status')} ({ready.get('reason')})")
    log.info("%s/%s: %s", key[0], key[1], "; ".join(parts))


def _serving(spec: ModelDeploymentSpec | None, resolved: Resolved | None) -> Serving | None:
    """What serves for this spec, the identity of a revision in status.history."""
    if spec is None or resolved is None:
        return None
    runtime = resolved.runtime.name if resolved.runtime is not None else None
    return Serving(spec.model.version, resolved.server.image, runtime)


def _ignored_replicas(spec: ModelDeploymentSpec | None) -> int | None:
    """spec.replicas when autoscaling overrides it and someone set it (1 is the schema's default).

    `kubectl scale md/x` is accepted (the scale subresource writes spec.replicas), so a count the
    HPA will not follow must be said, or the command looks broken.
    """
    if spec is None or spec.autoscaling is None or spec.replicas == 1:
        return None
    return spec.replicas


def _applied_before(body: Obj) -> bool:
    """Whether this generation's children were applied: a child missing or different now is a hand edit.

    Not when the generation is Stalled: it may have stopped before any child existed (a runtime
    or a pull secret not there yet), and its children appearing once that is fixed, without a
    new generation, are the first apply, not a correction.
    """
    stalled = find(((body.get("status") or {}).get("conditions")), STALLED) or {}
    return _converged_before(body) and stalled.get("status") != "True"


def _converged_before(body: Obj) -> bool:
    """Whether the operator had finished this generation: children changing now are news."""
    return bool((body.get("status") or {}).get("observedGeneration") == body["metadata"].get("generation"))


def _config_drift_from_status(body: Obj) -> ConfigDriftStatus:
    """The count so far, as the status states it: it survives a restart of the operator."""
    return ConfigDriftStatus.read(((body.get("status") or {}).get("drift") or {}).get("config") or {})


def _validation_message(error: ValidationError) -> str:
    parts = []
    for detail in error.errors()[:5]:
        where = ".".join(str(p) for p in detail["loc"])
        parts.append(f"spec.{where}: {detail['msg']}")
    return "; ".join(parts)
