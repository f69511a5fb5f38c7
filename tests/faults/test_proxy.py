"""The cuttable proxy itself, against a loopback echo server: no sandbox needed."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.faults.proxy import CuttableProxy

pytestmark = pytest.mark.faults


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: int) -> Iterator[CuttableProxy]:
    instance = CuttableProxy("127.0.0.1", echo)
    instance.start()
    yield instance
    instance.close()


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _is_broken(sock: socket.socket) -> bool:
    """Reset or closed: a write or a read fails, or the read ends without the echo."""
    try:
        sock.sendall(b"during")
        return sock.recv(16) == b""
    except OSError:
        return True


def test_bytes_pass_both_ways_untouched(proxy: CuttableProxy) -> None:
    payload = bytes(range(256)) * 1000  # more than one read, every byte value
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        assert _roundtrip(sock, payload) == payload


def test_cut_breaks_open_connections_and_refuses_new_ones_until_restored(
    proxy: CuttableProxy, caplog: pytest.LogCaptureFixture
) -> None:
    port = proxy.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert _roundtrip(sock, b"before") == b"before"
        assert proxy.cut() == 1
        assert proxy.is_cut
        assert _is_broken(sock)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)

    proxy.restore()
    assert proxy.port == port, "restored on the same port: the kubeconfig through it stays valid"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert _roundtrip(sock, b"after") == b"after"
    assert proxy.connections_cut == 1
    proxy.close()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR], "a cut is no error"


def test_refuses_to_forward_anywhere_but_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        CuttableProxy("10.0.0.1", 443)  # ok-nonloopback: the address is rejected, never connected to
