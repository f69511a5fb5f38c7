"""One reconcile of one ModelDeployment: render, compare, apply what differs, write status.

Level-triggered: it reads the latest ModelDeployment and children from the watch caches
and converges them, whatever event brought it here. It writes nothing when nothing
differs, which is what makes an idle cluster and a periodic resync cost zero writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from modeldeploy import kubeapi, metrics
from modeldeploy.api.v1alpha1 import ModelDeploymentSpec
from modeldeploy.controller.cache import Key, controller_uid
from modeldeploy.controller.events import EventRecorder
from modeldeploy.controller.state import ConfigDriftRecord, ControllerState
from modeldeploy.reconcile.compare import contains
from modeldeploy.reconcile.limits import (
    EVENTS_BURST,
    EVENTS_PER_MINUTE,
    Failure,
    WriteBudget,
    is_stalled,
    record_failure,
    stalled_retry_in,
)
from modeldeploy.render import labels as lbl
from modeldeploy.render.children import Owner, render_children, service_url
from modeldeploy.render.names import child_name
from modeldeploy.status import compute as status_compute
from modeldeploy.status.events import transition_events

log = logging.getLogger("modeldeploy.reconciler")
HANDOVER_MANAGER = "modeldeploy-replicas-handover"
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
        self._holds: dict[Key, tuple[int, float, status_compute.Problem]] = {}
        self._status_written_at: dict[Key, float] = {}  # monotonic time of each object's last status write
        self._settled: dict[Key, tuple[Any, ...]] = {}  # what an object's last no-op reconcile was computed from

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
            if outcome.namespace_terminating or outcome.owner_gone:
                if outcome.namespace_terminating:
                    self._terminating[key[0]] = self._clock() + TERMINATING_MEMORY_SECONDS
                result = "skipped"
                return None
            if outcome.throttled:
                result = "throttled"
                return outcome.retry_in
            result = (
                "stalled" if outcome.problem else ("applied" if outcome.applied or outcome.deleted else "unchanged")
            )
            try:
                wrote_status = await self._write_status(outcome.body or body, outcome)
            except Throttled as throttled:
                result = "throttled"
                return throttled.wait
            except Coalesced as coalesced:
                result = "coalesced"
                return coalesced.wait
            except kubeapi.ApiError as error:
                if error.status != 404:
                    raise
                # deleted between the read and the status write (say, right after creation): news, not trouble
                log.info("%s/%s was deleted meanwhile; nothing to report", key[0], key[1])
                result = "skipped"
                return None
            _log_writes(key, body, outcome, wrote_status)
            if result == "unchanged" and wrote_status is None and outcome.retry_in is None:
                self._settled[key] = inputs
            return outcome.retry_in
        finally:
            metrics.RECONCILES.labels(result=result).inc()
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

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
            version(self.state.deployments.get((namespace, name))),
            version(self.state.services.get((namespace, name))),
            version(self.state.hpas.get((namespace, name))),
            tuple(version(pod) for pod in self.state.pods.by_label(namespace, name)),
            _Same(self.state.health.get(key)),
            _Same(self.state.data_drift.get(key)),
            probes_alive,
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
            spec = ModelDeploymentSpec.model_validate(body.get("spec", {}))
            if self.probes is not None:
                self.probes.ensure(key, spec)
            desired = render_children(owner, spec)
            lives = [self._live_child(owner, child) for child in desired.all()]
            stale = [
                (c, live) for c, live in zip(desired.all(), lives, strict=True) if live is None or not contains(live, c)
            ]
            if stale or not _converged_before(body):
                # only on the way to an apply: a GET per pull secret on every resync was N reads per period
                await self._check_pull_secrets(owner, spec)
            hold = self._holds.get(key)
            if stale and hold is not None and hold[0] == metadata.get("generation") and self._clock() < hold[1]:
                outcome.problem = hold[2]  # the same spec would fail the same way: wait out the backoff
                outcome.retry_in = hold[1] - self._clock()
                return outcome
            if stale:
                self._spend(key, len(stale))
            if stale and _converged_before(body):
                # Children of a converged owner changed or vanished: a hand edit, or the garbage
                # collector acting for an owner deleted while the watch was down. Only the
                # apiserver can tell which; a new or changed owner needs no such check.
                fresh = await self._confirm_owner(body)
                if fresh is None:
                    outcome.owner_gone = True
                    return outcome
                outcome.body = body = fresh
            # Children are independent: applied side by side, every outcome kept, the first error raised.
            results = await asyncio.gather(
                *(self._converge_child(body, spec, child, live, outcome) for child, live in stale),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if desired.hpa is None:
                await self._delete_stale_hpa(owner, outcome)
            self._failures.pop(key, None)
            self._holds.pop(key, None)
        except ValidationError as error:
            outcome.problem = status_compute.Problem("InvalidSpec", _validation_message(error))
        except Stalled as stalled:
            outcome.problem = stalled.problem
        except Throttled as throttled:
            outcome.throttled = True
            outcome.retry_in = throttled.wait
            log.warning("%s/%s is writing too often; next reconcile in %.0fs", key[0], key[1], throttled.wait)
            return outcome
        except kubeapi.ApiError as error:
            if error.status == 403 and "being terminated" in error.message:
                outcome.namespace_terminating = True  # the namespace controller is deleting everything
                return outcome
            failure = record_failure(self._failures.get(key), f"{error.status} {error.message}")
            self._failures[key] = failure
            if not is_stalled(failure, error.status):
                raise
            reason = "Forbidden" if error.status == 403 else "ApplyRejected"
            outcome.problem = status_compute.Problem(reason, error.message)
            outcome.retry_in = stalled_retry_in(failure)
            generation = int(metadata.get("generation", 0))
            self._holds[key] = (generation, self._clock() + outcome.retry_in, outcome.problem)
        await self._announce(body, outcome)
        return outcome

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

    def _live_child(self, owner: Owner, child: Obj) -> Obj | None:
        """The live child from the synced cache, which holds every object carrying our label.

        An object missing from it is absent, or someone else's of the same name: the first
        apply tells which (see `_create_child`), so a new ModelDeployment costs no GET that 404s.
        """
        kind = child["kind"]
        name = child["metadata"]["name"]
        live = self.state.cache_for(kind).get((owner.namespace, name))
        if live is not None and controller_uid(live) != owner.uid:
            raise _name_conflict(kind, name)
        return live

    async def _create_child(self, owner: Owner, child: Obj) -> Obj:
        """Apply a child the cache does not hold, without taking over a foreign object.

        Not forced: on someone else's object of that name, a field we set that they own with
        another value is a conflict (409), and our controller reference beside theirs is invalid
        (422); either way nothing was written. Only then is the object read, to say whose it is.
        """
        try:
            return await self.api.apply(child, force=False)
        except kubeapi.ApiError as error:
            if error.status not in (409, 422):
                raise
            kind, name = child["kind"], child["metadata"]["name"]
            found = await self.api.get(kubeapi.KINDS_BY_NAME[kind], owner.namespace, name)
            if found is not None and controller_uid(found) != owner.uid:
                raise _name_conflict(kind, name) from None
            if found is None or error.status == 422:
                raise
            return await self.api.apply(child)  # ours, out of the cache (a label removed by hand)

    async def _converge_child(
        self, body: Obj, spec: ModelDeploymentSpec, child: Obj, live: Obj | None, outcome: Outcome
    ) -> None:
        kind, name = child["kind"], child["metadata"]["name"]
        desired_hash = child["metadata"]["annotations"][lbl.APPLIED_HASH]
        label = f"{kind}/{name}"
        correction = None
        if live is None:
            if _converged_before(body):
                correction = f"{label} was deleted"
        elif live["metadata"].get("annotations", {}).get(lbl.APPLIED_HASH) == desired_hash:
            correction = f"{label} was edited"
        if kind == "Deployment" and spec.autoscaling is not None and live is not None:
            await self._hand_replicas_to_hpa(live)
        owner = Owner(body["metadata"]["name"], body["metadata"]["namespace"], body["metadata"]["uid"])
        applied = await self.api.apply(child) if live is not None else await self._create_child(owner, child)
        self.state.cache_for(kind).apply_event("MODIFIED", applied)
        outcome.applied.append(label)
        if correction is not None:  # only a correction that took effect is one
            outcome.corrected.append(correction)

    async def _hand_replicas_to_hpa(self, live: Obj) -> None:
        """Stop owning spec.replicas without resetting it, so the HPA takes over smoothly.

        Dropping a field from our apply would delete it (back to 1 replica) if we were its only
        manager; a second manager first co-owns the current value, then our apply lets go.
        """
        if not _we_own_replicas(live):
            return
        metadata = live["metadata"]
        await self.api.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
                "spec": {"replicas": live["spec"].get("replicas", 1)},
            },
            field_manager=HANDOVER_MANAGER,
        )

    async def _delete_stale_hpa(self, owner: Owner, outcome: Outcome) -> None:
        name = child_name(owner.name)
        live = self.state.hpas.get((owner.namespace, name))
        if live is None or controller_uid(live) != owner.uid:
            return
        if await self.api.delete(kubeapi.HPA, owner.namespace, name, uid=live["metadata"]["uid"]):
            self.state.hpas.apply_event("DELETED", live)
            outcome.deleted.append(f"HorizontalPodAutoscaler/{name}")

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
        spec = _spec_or_none(body)
        ignored = _ignored_replicas(spec)
        if ignored is not None and not _converged_before(body):  # said once for each new generation
            await self._event(body, "Warning", "ScaleIgnored", status_compute.ignored_replicas_message(ignored))
        for what in outcome.corrected:
            await self._event(body, "Warning", "ConfigDriftCorrected", f"{what} by hand; restored the declared state")
        if outcome.corrected:
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            record = self.state.config_drift.setdefault(key, _record_from_status(body))
            record.corrections += len(outcome.corrected)
            record.last_time = utcnow()
            record.last_child = outcome.corrected[-1].split(" ")[0]
            metrics.CONFIG_DRIFT_CORRECTIONS.labels(namespace=key[0], name=key[1]).inc(len(outcome.corrected))
        changed = [c for c in outcome.applied if not any(c in what for what in outcome.corrected)]
        if changed and (body.get("status") or {}).get("observedGeneration") is not None:  # not a routine first creation
            await self._event(body, "Normal", "ChildrenApplied", "applied " + ", ".join(changed))
        if outcome.deleted:
            await self._event(body, "Normal", "ChildrenDeleted", "deleted " + ", ".join(outcome.deleted))

    # ---- status -------------------------------------------------------------------------
    def observe(self, body: Obj, problem: status_compute.Problem | None) -> status_compute.Observation:
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        spec_dict = body.get("spec", {})
        try:
            spec: ModelDeploymentSpec | None = ModelDeploymentSpec.model_validate(spec_dict)
        except ValidationError:
            spec = None
        owner = Owner(metadata["name"], metadata["namespace"], metadata["uid"])
        name = child_name(owner.name)
        record = self.state.config_drift.get(key) or _record_from_status(body)
        return status_compute.Observation(
            generation=int(metadata.get("generation", 0)),
            expected_version=str(spec_dict.get("model", {}).get("version", "")),
            desired_replicas=None if spec is None or spec.autoscaling is not None else spec.replicas,
            ignored_replicas=_ignored_replicas(spec),
            probing_enabled=spec is not None and spec.probing.enabled,
            problem=problem,
            deployment=self.state.deployments.get((owner.namespace, name)),
            selector=lbl.selector_string(lbl.selector_labels(name)),
            url=service_url(owner, spec) if spec is not None else None,
            health=self._current_health(key, name),
            data_drift=self.state.data_drift.get(key),
            config_drift=record.as_status(),
            previous_status=body.get("status") or {},
        )

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
        observation = self.observe(body, outcome.problem)
        new = status_compute.compute_status(observation, now=utcnow())
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
        why = "drifted" if _converged_before(body) else f"new generation {generation}"
        parts.append(f"applied {', '.join(outcome.applied)} ({why})")
    if outcome.deleted:
        parts.append("deleted " + ", ".join(outcome.deleted))
    if status is not None:
        ready: dict[str, Any] = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        parts.append(f"status: Ready={ready.get('status')} ({ready.get('reason')})")
    log.info("%s/%s: %s", key[0], key[1], "; ".join(parts))


def _spec_or_none(body: Obj) -> ModelDeploymentSpec | None:
    try:
        return ModelDeploymentSpec.model_validate(body.get("spec", {}))
    except ValidationError:
        return None


def _ignored_replicas(spec: ModelDeploymentSpec | None) -> int | None:
    """spec.replicas when autoscaling overrides it and someone set it (1 is the schema's default).

    `kubectl scale md/x` is accepted (the scale subresource writes spec.replicas), so a count the
    HPA will not follow must be said, or the command looks broken.
    """
    if spec is None or spec.autoscaling is None or spec.replicas == 1:
        return None
    return spec.replicas


def _converged_before(body: Obj) -> bool:
    """Whether the operator had finished this generation: children changing now are news."""
    return bool((body.get("status") or {}).get("observedGeneration") == body["metadata"].get("generation"))


def _name_conflict(kind: str, name: str) -> Stalled:
    return Stalled(
        "ChildNameConflict",
        f"{kind} {name!r} already exists and is not controlled by this ModelDeployment; "
        "rename the ModelDeployment or remove that object "
        "(modeldeploy never takes over objects it did not create)",
    )


def _we_own_replicas(live: Obj) -> bool:
    for entry in live["metadata"].get("managedFields", []) or []:
        ours = entry.get("manager") == kubeapi.FIELD_MANAGER and entry.get("operation") == "Apply"
        if ours and "f:replicas" in entry.get("fieldsV1", {}).get("f:spec", {}):
            return True
    return False


def _record_from_status(body: Obj) -> ConfigDriftRecord:
    config = ((body.get("status") or {}).get("drift") or {}).get("config") or {}
    return ConfigDriftRecord(
        int(config.get("corrections", 0)), config.get("lastCorrectionTime"), config.get("lastCorrectedChild")
    )


def _validation_message(error: ValidationError) -> str:
    parts = []
    for detail in error.errors()[:5]:
        where = ".".join(str(p) for p in detail["loc"])
        parts.append(f"spec.{where}: {detail['msg']}")
    return "; ".join(parts)
