"""One simulated replica's state, and the table that maps listening addresses to replicas.

The farm serves every replica from one aiohttp application; a request finds its
replica by the local address it arrived on, so adding a replica costs a
listening socket and this small object, not an application or a runner.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from modeldeploy.modelserver.faults import Faults, parse_faults
from modeldeploy.modelserver.metrics import ReplicaMetrics

Address = tuple[str, int]


@dataclass(frozen=True)
class ReplicaConfig:
    model_name: str = "iris"
    version: str = "1"
    faults: str = "ok"


class Replica:
    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self.metrics = ReplicaMetrics()
        self._faults = parse_faults(config.faults)
        self._changed = asyncio.Event()
        self.closed = False

    @property
    def faults(self) -> Faults:
        return self._faults

    @property
    def served_version(self) -> str:
        return self._faults.version if self._faults.version is not None else self.config.version

    def set_faults(self, faults: str | Faults) -> None:
        self._faults = parse_faults(faults) if isinstance(faults, str) else faults
        self._wake()

    def close(self) -> None:
        """Release requests held by `hang`; the replica answers nothing afterwards."""
        self.closed = True
        self._wake()

    async def wait_while_hung(self) -> None:
        while self._faults.mode == "hang" and not self.closed:
            # Take the event before waiting: `_wake` swaps in a fresh one.
            await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class ReplicaRegistry:
    """Replicas by listening address, with an optional fallback for a lone server.

    A single server bound to 0.0.0.0 sees requests arrive on whatever address the
    pod has, which it cannot know in advance: those go to `default`.
    """

    def __init__(self, default: Replica | None = None) -> None:
        self.default = default
        self._by_address: dict[Address, Replica] = {}

    def add(self, address: Address, replica: Replica) -> None:
        if address in self._by_address:
            raise ValueError(f"a replica already listens on {address[0]}:{address[1]}")
        self._by_address[address] = replica

    def remove(self, address: Address) -> Replica | None:
        return self._by_address.pop(address, None)

    def get(self, address: Address) -> Replica | None:
        return self._by_address.get(address)

    def find(self, sockname: object) -> Replica | None:
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            replica = self._by_address.get((str(sockname[0]), int(sockname[1])))
            if replica is not None:
                return replica
        return self.default

    def __len__(self) -> int:
        return len(self._by_address)

    def addresses(self) -> list[Address]:
        return list(self._by_address)
