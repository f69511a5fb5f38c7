"""A TCP proxy on loopback that a test can cut and restore: a watch gap for one client only.

Put between the operator and the apiserver (through a kubeconfig naming the proxy's port),
it lets a test blind the operator while everybody else, kubectl and the controllers, still
talks to the apiserver directly. `cut()` drops every open connection and refuses new ones,
as a dead apiserver would; `restore()` accepts again. Bytes pass through untouched, so TLS
is end to end and the apiserver's certificate (valid for 127.0.0.1) still verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
CHUNK = 64 * 1024


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to an upstream loopback address, on its own event loop thread."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        if not upstream_host.startswith("127."):
            raise ValueError(f"the proxy only forwards to loopback, not {upstream_host}")
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections_cut = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cuttable-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()  # one per proxied connection
        self._pumps: set[asyncio.Future[None]] = set()  # two per connection, one per direction
        self._writers: set[asyncio.StreamWriter] = set()

    # ---- called from the test's thread -------------------------------------------------------
    def start(self) -> int:
        self._thread.start()
        self._call(self._listen())
        return self.port

    def cut(self) -> int:
        """Refuse new connections and drop every open one; return how many were dropped."""
        return self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._call(self._listen())

    @property
    def is_cut(self) -> bool:
        return self._server is None

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # ---- on the proxy's loop ------------------------------------------------------------------
    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _cut(self) -> int:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        handlers = set(self._handlers)
        for writer in list(self._writers):
            writer.transport.abort()  # RST, not FIN: the client sees a broken connection, not an orderly end
        for pump in list(self._pumps):
            pump.cancel()
        # the handlers end by themselves once their pumps have; cancelling a handler is an error
        # asyncio's stream callback would log
        if handlers:
            await asyncio.wait(handlers, timeout=5)
        self.connections_cut += len(handlers)
        return len(handlers)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        handler = asyncio.current_task()
        assert handler is not None
        pumps = {
            asyncio.ensure_future(_pump(client_reader, upstream_writer)),
            asyncio.ensure_future(_pump(upstream_reader, client_writer)),
        }
        self._handlers.add(handler)
        self._pumps.update(pumps)
        self._writers.update((client_writer, upstream_writer))
        try:  # until both directions end, or either breaks
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_writer, upstream_writer):
                self._writers.discard(writer)
                writer.transport.abort()
            self._pumps.difference_update(pumps)
            self._handlers.discard(handler)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()


def kubeconfig_through(kubeconfig: Path, proxy: CuttableProxy, target: Path) -> Path:
    """A copy of `kubeconfig` whose clusters are reached through `proxy`: same credentials, same CA."""
    config = json.loads(kubeconfig.read_text())
    for cluster in config["clusters"]:
        server = urlsplit(cluster["cluster"]["server"])
        cluster["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{proxy.port}"
    target.write_text(json.dumps(config, indent=2))
    target.chmod(0o600)
    return target


def upstream_of(kubeconfig: Path) -> tuple[str, int]:
    """(host, port) of the first cluster in a kubeconfig: what the proxy forwards to."""
    server = urlsplit(json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    assert server.hostname is not None
    assert server.port is not None
    return server.hostname, server.port
