"""An httpx transport with one small connection pool per replica, opened and closed with its probe.

httpcore's pool scans all of its connections on every request and response,
and in part quadratically (for each idle connection it counts the idle
connections again). With a few hundred replicas probed at once and their
keep-alive connections lingering between cycles, that scan cost more than the
requests themselves: 200 replicas at concurrency 64 took 21 s, 16 of them in
the pool's bookkeeping. Routing each origin to its own pool of two connections
(one for the health requests, one for the scrape) keeps every scan trivial.

The prober leases an origin's pool for the duration of one replica's probe;
when the last lease ends the pool is closed. Nothing is kept between cycles,
so no connection idles long enough to be closed by the server under our feet
(the stale keep-alive race), and file descriptors are bounded by the probes in
flight rather than by the number of replicas.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

Origin = tuple[str, str, int]


class OriginPoolTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, connections_per_origin: int = 2) -> None:
        self._limits = httpx.Limits(
            max_connections=connections_per_origin, max_keepalive_connections=connections_per_origin
        )
        # Probes are plain HTTP to pod IPs. One context for every pool avoids
        # building (and loading CA files into) a context per pool; it trusts no
        # CA, so an https URL could never be used by mistake.
        self._ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._pools: dict[Origin, httpx.AsyncHTTPTransport] = {}
        self._leases: dict[Origin, int] = {}

    def _pool(self, origin: Origin) -> httpx.AsyncHTTPTransport:
        pool = self._pools.get(origin)
        if pool is None:
            pool = httpx.AsyncHTTPTransport(verify=self._ssl_context, trust_env=False, limits=self._limits)
            self._pools[origin] = pool
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin: Origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        return await self._pool(origin).handle_async_request(request)

    @asynccontextmanager
    async def lease(self, origins: list[Origin]) -> AsyncIterator[None]:
        """Keep these origins' pools while the block runs; close each when its last lease ends."""
        for origin in origins:
            self._leases[origin] = self._leases.get(origin, 0) + 1
        try:
            yield
        finally:
            for origin in origins:
                left = self._leases[origin] - 1
                if left:
                    self._leases[origin] = left
                    continue
                del self._leases[origin]
                pool = self._pools.pop(origin, None)
                if pool is not None:
                    await pool.aclose()

    async def aclose(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.aclose()
