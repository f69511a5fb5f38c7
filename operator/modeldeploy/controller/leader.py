"""Leader election on a coordination.k8s.io/v1 Lease, so several operator replicas can run.

Every replica watches and keeps its caches warm; only the Lease holder reconciles and probes.
The holder renews the Lease every `renew_seconds`; a standby takes it over once it has not seen
the Lease change for `lease_seconds`, timed on its own monotonic clock from when it saw the
record change (client-go's observedTime): the holder's `renewTime` is written by another machine's
clock, and comparing it with ours let a 30 s skew make two leaders. Updates carry the
resourceVersion they read, so two standbys racing for an expired Lease cannot both win. A holder
that cannot renew in time gives up: it stops reconciling, and the process exits so it restarts
as a clean standby. On a graceful stop the holder releases the Lease (no holder), so a rolling
upgrade hands over within a renewal period instead of `lease_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modeldeploy import kubeapi, metrics

log = logging.getLogger("modeldeploy.leader")
MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> datetime:
    return datetime.now(UTC)


def _format(moment: datetime) -> str:
    return moment.strftime(MICROTIME)


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0
    renew_seconds: float = 5.0


@dataclass(frozen=True)
class Observed:
    """A Lease record as this candidate last saw it, and when (its monotonic clock) it changed."""

    record: tuple[Any, ...]
    at: float


def _record(spec: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("holderIdentity", "renewTime", "acquireTime", "leaseTransitions", "leaseDurationSeconds")
    return tuple(spec.get(key) for key in keys)


def observe(previous: Observed | None, spec: dict[str, Any], now: float) -> Observed:
    """Start timing afresh whenever the record changed since it was last seen (pure)."""
    record = _record(spec)
    if previous is not None and previous.record == record:
        return previous
    return Observed(record, now)


def expired(spec: dict[str, Any], observed: Observed, now: float) -> bool:
    """Whether the holder has let the Lease go: released, or unchanged for its whole duration (pure).

    `now` and `observed.at` are this process's monotonic clock; no time written by another
    machine is compared with it.
    """
    if not spec.get("holderIdentity"):
        return True
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return now > observed.at + duration


class LeaderElector:
    def __init__(self, api: kubeapi.KubeApi, settings: LeaseSettings) -> None:
        self.api = api
        self.settings = settings
        self.leading = False
        self.lost = asyncio.Event()
        self.observed: Observed | None = None
        self._campaign: asyncio.Task[Any] | None = None

    def _lease(self, spec: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.settings.name, "namespace": self.settings.namespace}
        if version is not None:
            metadata["resourceVersion"] = version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    async def try_acquire_or_renew(self) -> bool:
        """One round of the protocol; True when we hold the Lease afterwards."""
        s = self.settings
        now = _now()
        ours: dict[str, Any] = {
            "holderIdentity": s.identity,
            "leaseDurationSeconds": round(s.lease_seconds),
            "renewTime": _format(now),
        }
        current = await self.api.get(kubeapi.LEASE, s.namespace, s.name)
        if current is None:
            spec: dict[str, Any] = {**ours, "acquireTime": _format(now), "leaseTransitions": 0}
            try:
                await self.api.create(kubeapi.LEASE, s.namespace, self._lease(spec))
            except kubeapi.ApiError as error:
                if error.status == 409:  # another replica created it first
                    return False
                raise
            return True
        spec = dict(current.get("spec") or {})
        version = current["metadata"]["resourceVersion"]
        self.observed = observe(self.observed, spec, time.monotonic())
        if spec.get("holderIdentity") == s.identity:
            spec.update(ours)
        elif expired(spec, self.observed, time.monotonic()):
            transitions = int(spec.get("leaseTransitions") or 0) + 1
            spec.update(ours, acquireTime=_format(now), leaseTransitions=transitions)
        else:
            return False
        try:
            await self.api.replace(kubeapi.LEASE, s.namespace, s.name, self._lease(spec, version))
        except kubeapi.ApiError as error:
            if error.status == 409:  # someone else updated it between our read and write
                return False
            raise
        return True

    async def release(self) -> bool:
        """Stop campaigning, then give the Lease up, so a standby need not wait for it to expire.

        The campaign stops first: left running, it found the Lease free a moment later and took
        it back, and the standby then waited out a whole lease duration after all.
        """
        campaign, self._campaign = self._campaign, None
        if campaign is not None and campaign is not asyncio.current_task():
            campaign.cancel()
            await asyncio.gather(campaign, return_exceptions=True)
        if not self.leading:
            return False
        s = self.settings
        self.leading = False
        metrics.LEADER.set(0)
        current = await self.api.get(kubeapi.LEASE, s.namespace, s.name)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != s.identity:
            return False
        now = _format(_now())
        spec = {
            "leaseDurationSeconds": 1,
            "leaseTransitions": int((current.get("spec") or {}).get("leaseTransitions") or 0),
            "acquireTime": now,
            "renewTime": now,
        }
        try:
            await self.api.replace(
                kubeapi.LEASE, s.namespace, s.name, self._lease(spec, current["metadata"]["resourceVersion"])
            )
        except kubeapi.ApiError as error:
            log.warning("could not release the lease %s/%s: %s", s.namespace, s.name, error)
            return False
        log.info("released the lease %s/%s", s.namespace, s.name)
        return True

    async def run(self, on_elected: Callable[[], Awaitable[None] | None]) -> None:
        """Campaign until elected, then renew; sets `lost` and returns when leadership is lost."""
        s = self.settings
        self._campaign = asyncio.current_task()
        last_renewal = 0.0
        while True:
            failed = False
            try:
                held = await self.try_acquire_or_renew()
            except Exception as error:  # network trouble: keep trying until the deadline passes
                log.warning("lease %s/%s: %s", s.namespace, s.name, error)
                held, failed = False, True
            now = time.monotonic()
            deadline_missed = now - last_renewal > s.lease_seconds - s.renew_seconds
            if held:
                last_renewal = now
                if not self.leading:
                    self.leading = True
                    metrics.LEADER.set(1)
                    log.info("became the leader (lease %s/%s, identity %s)", s.namespace, s.name, s.identity)
                    started = on_elected()
                    if started is not None:
                        await started
            elif self.leading and (not failed or deadline_missed):  # another holder, or renewals failing
                log.error("lost the lease %s/%s: stopping so a standby can take over", s.namespace, s.name)
                self.leading = False
                metrics.LEADER.set(0)
                self.lost.set()
                return
            await asyncio.sleep(s.renew_seconds if self.leading else s.renew_seconds / 2)
