"""The health and metrics listener of the acquisition service."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import urllib3

from labdock.acquire.config import AcquireConfig
from labdock.acquire.service import Service


def free_ipv6_port() -> int | None:
    """Return a free TCP port on ::1, or None when the host has no IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port: int = probe.getsockname()[1]
    except OSError:
        return None
    return port


def test_listen_on_ipv6_address(tmp_path: Path) -> None:
    port = free_ipv6_port()
    if port is None:
        pytest.skip("no IPv6 loopback address")
    config = AcquireConfig.model_validate(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'points.sqlite'}"},
            "spool": {"directory": str(tmp_path / "spool")},
            "http": {"listen": f"[::1]:{port}"},
        }
    )
    service = Service(config)
    try:
        service._start_http()
        metrics = urllib3.request("GET", f"http://[::1]:{port}/metrics", retries=False)
        assert metrics.status == 200
        assert b"labdock_acquire_spool_messages" in metrics.data
        readiness = urllib3.request("GET", f"http://[::1]:{port}/readyz", retries=False)
        assert readiness.status == 503
        assert json.loads(readiness.data)["checks"]["broker"] is False
    finally:
        if service.http is not None:
            service.http.shutdown()
            service.http.server_close()
        service.spool.close()
