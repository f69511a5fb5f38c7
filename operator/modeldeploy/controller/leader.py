"""Leader election on a coordination.k8s.io/v1 Lease, so several operator replicas can run.

Every replica watches and keeps its caches warm; only the Lease holder reconciles and probes.
The holder renews the Lease every `renew_seconds`; a standby takes it over once it has not been
renewed for `lease_seconds`. Updates carry the resourceVersion they read, so two standbys racing
for an expired Lease cannot both win. A holder that cannot renew in time gives up: it stops
reconciling, and the process exits so it restarts as a clean standby (what client-go does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy import kubeapi

log = logging.getLogger("modeldeploy.leader")
MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> datetime:
    return datetime.now(UTC)


def _format(moment: datetime) -> str:
    return moment.strftime(MICROTIME)


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    for pattern in (MICROTIME, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0
    renew_seconds: float = 5.0


def expired(spec: dict[str, Any], now: datetime) -> bool:
    """Whether a Lease's holder has missed its renewal deadline (pure)."""
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or now > renewed + timedelta(seconds=duration)


class LeaderElector:
    def __init__(self, api: kubeapi.KubeClient, settings: LeaseSettings) -> None:
        self.api = api
        self.settings = settings
        self.leading = False
        self.lost = asyncio.Event()

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
        if spec.get("holderIdentity") == s.identity:
            spec.update(ours)
        elif expired(spec, now):
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

    async def run(self, on_elected: Callable[[], Awaitable[None] | None]) -> None:
        """Campaign until elected, then renew; sets `lost` and returns when leadership is lost."""
        s = self.settings
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
                    log.info("became the leader (lease %s/%s, identity %s)", s.namespace, s.name, s.identity)
                    started = on_elected()
                    if started is not None:
                        await started
            elif self.leading and (not failed or deadline_missed):  # another holder, or renewals failing
                log.error("lost the lease %s/%s: stopping so a standby can take over", s.namespace, s.name)
                self.leading = False
                self.lost.set()
                return
            await asyncio.sleep(s.renew_seconds if self.leading else s.renew_seconds / 2)
