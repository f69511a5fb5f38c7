"""Sandbox ports sit below the ephemeral range, so a restart cannot lose its port to a client."""

from __future__ import annotations

import socket

from modeldeploy_dev.sandbox.cluster import _ephemeral_range, _free_port


def test_a_sandbox_port_is_free_and_outside_the_range_the_kernel_gives_outgoing_connections() -> None:
    low, high = _ephemeral_range()
    ports = {_free_port() for _ in range(20)}
    assert all(1024 <= port < low for port in ports), (sorted(ports), low, high)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if it was not free
