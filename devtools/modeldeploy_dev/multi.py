"""Many replicas in one process: one aiohttp runner, one listening socket per replica.

The sandbox farm simulates thousands of pods, each reachable at its own
127.x.y.z:port. A runner per replica would cost an application, a server and
their bookkeeping each; instead one runner serves them all and each replica is
a `SockSite` on its own socket plus an entry in the `ReplicaRegistry`.

Usage::

    farm = MultiReplicaServer()
    port = await farm.add("127.0.2.5", 0, ReplicaConfig("iris", "1"))  # 0: pick a free port
    farm.set_fault("127.0.2.5", port, "hang")
    await farm.remove("127.0.2.5", port)
    await farm.close()
"""

from __future__ import annotations

import resource
import socket
from types import TracebackType

from aiohttp import web

from modeldeploy.modelserver.app import create_runner
from modeldeploy.modelserver.faults import Faults
from modeldeploy.modelserver.replica import Address, Replica, ReplicaConfig, ReplicaRegistry

# Connections waiting to be accepted per replica; probes come in small bursts.
BACKLOG = 128


def raise_nofile_limit() -> int:
    """Lift the soft open-files limit to the hard one; return the new soft limit.

    Each replica holds a listening socket and each open probe a connection,
    so a farm of thousands exceeds the usual soft limit of 1024 quickly.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def _listen(ip: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class MultiReplicaServer:
    def __init__(self) -> None:
        self.registry = ReplicaRegistry()
        self._runner: web.AppRunner | None = None
        self._sites: dict[Address, web.SockSite] = {}

    async def start(self) -> None:
        if self._runner is None:
            raise_nofile_limit()
            runner = create_runner(self.registry)
            await runner.setup()
            self._runner = runner

    async def add(self, ip: str, port: int, config: ReplicaConfig | None = None) -> int:
        """Serve a replica on ip:port and return the port (useful with port 0)."""
        await self.start()
        assert self._runner is not None
        sock = _listen(ip, port)
        address: Address = (ip, sock.getsockname()[1])
        try:
            self.registry.add(address, Replica(config or ReplicaConfig()))
        except ValueError:
            sock.close()
            raise
        site = web.SockSite(self._runner, sock, backlog=BACKLOG)
        try:
            await site.start()
        except BaseException:
            self.registry.remove(address)
            sock.close()
            raise
        self._sites[address] = site
        return address[1]

    async def remove(self, ip: str, port: int) -> None:
        """Stop the replica as a deleted pod stops: listener gone, open connections cut."""
        address: Address = (ip, port)
        site = self._sites.pop(address, None)
        replica = self.registry.remove(address)
        if replica is not None:
            replica.close()
        if site is not None:
            await site.stop()
        self._cut_connections({address})

    def replica(self, ip: str, port: int) -> Replica:
        replica = self.registry.get((ip, port))
        if replica is None:
            raise KeyError(f"no replica on {ip}:{port}")
        return replica

    def set_fault(self, ip: str, port: int, faults: str | Faults) -> None:
        """Change a replica's behaviour at once, e.g. "hang", "version=2" or "ok"."""
        self.replica(ip, port).set_faults(faults)

    def addresses(self) -> list[Address]:
        return self.registry.addresses()

    def __len__(self) -> int:
        return len(self.registry)

    async def close(self) -> None:
        for address in list(self._sites):
            site = self._sites.pop(address)
            replica = self.registry.remove(address)
            if replica is not None:
                replica.close()
            await site.stop()
        if self._runner is not None:
            self._cut_connections(None)
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _cut_connections(self, addresses: set[Address] | None) -> None:
        server = self._runner.server if self._runner is not None else None
        if server is None:
            return
        for handler in server.connections:
            transport = handler.transport
            if transport is None:
                continue
            sockname = transport.get_extra_info("sockname")
            if addresses is None or (isinstance(sockname, tuple) and (sockname[0], sockname[1]) in addresses):
                transport.abort()

    async def __aenter__(self) -> MultiReplicaServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
