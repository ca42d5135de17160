"""The shared fixtures' own promises, where a broken one would make other tests flaky
rather than fail."""

from __future__ import annotations

import socket

from tests.conftest import ephemeral_ports, free_port


def test_free_ports_are_free_never_repeat_and_lie_outside_the_kernels_own_picks() -> None:
    low, high = ephemeral_ports()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < 65536 and not low <= port <= high for port in ports)
    for port in ports[:5]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
    # The premise: what the kernel hands out for port 0 (as the Temporal dev server asks
    # for its internal ports) comes from that range.
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        assert low <= other.getsockname()[1] <= high
