"""Fixtures that start real Mosquitto, InfluxDB 1.x and VictoriaMetrics servers.

Every server fixture gives a started instance on free 127.0.0.1 ports, with
its files under the test's ``tmp_path``, and stops it when the test ends.
A missing server binary skips the test, or fails it when CI is ``true``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import InfluxDB1, Mosquitto, VictoriaMetrics, require_binary


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """Absolute path of the mosquitto broker binary."""
    return require_binary("mosquitto", "mosquitto")


@pytest.fixture(scope="session")
def influxd_binary() -> str:
    """Absolute path of the InfluxDB 1.x server binary."""
    return require_binary("influxd", "influxdb")


@pytest.fixture(scope="session")
def victoria_metrics_binary() -> str:
    """Absolute path of the single-node VictoriaMetrics binary."""
    return require_binary("victoria-metrics", "victoria-metrics")


@pytest.fixture(scope="session")
def openssl_binary() -> str:
    """Absolute path of the openssl tool, used to create TLS test certificates."""
    return require_binary("openssl", "openssl")


@pytest.fixture
def mosquitto(mosquitto_binary: str, tmp_path: Path) -> Iterator[Mosquitto]:
    """A running Mosquitto broker at ``.url`` (``mqtt://127.0.0.1:PORT``)."""
    broker = Mosquitto(tmp_path / "mosquitto", binary=mosquitto_binary)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_tls(
    mosquitto_binary: str, openssl_binary: str, tmp_path: Path
) -> Iterator[Mosquitto]:
    """A running Mosquitto broker with a plain and a TLS listener.

    ``.tls_url`` is ``mqtts://127.0.0.1:PORT`` and ``.ca_file`` verifies it.
    """
    broker = Mosquitto(tmp_path / "mosquitto-tls", binary=mosquitto_binary, tls=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def influxdb1(influxd_binary: str, tmp_path: Path) -> Iterator[InfluxDB1]:
    """A running InfluxDB 1.x server without authentication."""
    server = InfluxDB1(tmp_path / "influxdb", binary=influxd_binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def victoriametrics(
    victoria_metrics_binary: str, tmp_path: Path
) -> Iterator[VictoriaMetrics]:
    """A running single-node VictoriaMetrics server."""
    server = VictoriaMetrics(
        tmp_path / "victoria-metrics", binary=victoria_metrics_binary
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test run, such as ``publish_qos1_3fa2c1``.

    It contains only lowercase letters, digits and underscores and starts
    with a letter, so it is valid as an MQTT topic level, an InfluxDB
    database name and a Prometheus label value.
    """
    test_name = request.node.name.removeprefix("test_").lower()
    slug = re.sub(r"[^a-z0-9]+", "_", test_name).strip("_")[:16].rstrip("_")
    if not slug or not slug[0].isalpha():
        slug = "t" + slug
    return f"{slug}_{uuid.uuid4().hex[:6]}"
