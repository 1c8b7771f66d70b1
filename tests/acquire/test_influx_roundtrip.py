"""Whatever a decoder produces, a real InfluxDB 1.x stores and returns unchanged.

Hypothesis generates JSON documents with awkward keys, strings and numbers
and topics with awkward levels; each example that the pipeline turns into a
line is written to its own measurement and read back.
"""

from __future__ import annotations

import itertools
import json
import math
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from components import InfluxDB1, require_binary
from labdock.acquire.config import AcquireConfig
from labdock.acquire.lineprotocol import parse_line_protocol
from labdock.acquire.pipeline import Pipeline

DATABASE = "roundtrip"
ARRIVAL = 1_764_000_000_123_456_789
_numbers = itertools.count()

KEY_ALPHABET = string.ascii_letters + string.digits + ' ,="\\-é°'
keys = st.text(KEY_ALPHABET, min_size=1, max_size=8).filter(
    lambda key: key[0] not in "_ " and key != "time" and not key.endswith("\\")
)
strings = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    strings,
)
documents = st.dictionaries(
    keys,
    st.one_of(scalars, st.dictionaries(keys, scalars, min_size=1, max_size=3)),
    min_size=1,
    max_size=6,
)
levels = st.text(
    string.ascii_letters + string.digits + " ,=\"'\\-é", min_size=0, max_size=10
).filter(lambda level: not level.endswith("\\"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    binary = require_binary("influxd", "influxdb")
    influx = InfluxDB1(tmp_path_factory.mktemp("roundtrip") / "influxdb", binary=binary)
    influx.start()
    influx.create_database(DATABASE)
    yield influx
    influx.stop()


def stored_rows(server: InfluxDB1, measurement: str) -> list[dict[str, Any]]:
    return server.query(
        DATABASE, f'SELECT * FROM "{measurement}" GROUP BY *', epoch="ns"
    )


def assert_roundtrip(server: InfluxDB1, line: str) -> None:
    point = parse_line_protocol(line)[0]
    server.write(DATABASE, line)
    rows = stored_rows(server, point.measurement)
    assert len(rows) == 1, (line, rows)
    row = rows[0]
    assert row.pop("time") == point.time_ns
    for key, value in point.tags.items():
        assert row.pop(key) == value, (line, key)
    for key, value in point.fields.items():
        stored = row.pop(key)
        if isinstance(value, float):
            assert isinstance(stored, int | float), (line, key, stored)
            assert float(stored) == value or (math.isnan(value) and math.isnan(stored))
        else:
            assert stored == value, (line, key)
            assert type(stored) is type(value), (line, key)
    assert all(value is None for value in row.values()), (line, row)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    document=documents,
    room=levels,
    device=levels,
    number_type=st.sampled_from(["float", "auto"]),
)
def test_json_roundtrip(
    server: InfluxDB1,
    document: dict[str, Any],
    room: str,
    device: str,
    number_type: str,
) -> None:
    measurement = f"json{next(_numbers)}"
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "lab/{room}/{device}",
                    "measurement": measurement,
                    "options": {"number_type": number_type},
                }
            ]
        }
    )
    payload = json.dumps(document).encode()
    outcome = Pipeline(config).process(f"lab/{room}/{device}", payload, ARRIVAL)
    assume(outcome.reason is None)
    assert len(outcome.lines) == 1
    assert_roundtrip(server, outcome.lines[0])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    value=st.one_of(
        st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans()
    )
)
def test_value_roundtrip(server: InfluxDB1, value: Any) -> None:
    measurement = f"value{next(_numbers)}"
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {"topic": "lab/{device}", "measurement": measurement, "format": "value"}
            ]
        }
    )
    text = json.dumps(value)
    outcome = Pipeline(config).process("lab/dev01", text.encode(), ARRIVAL)
    assume(outcome.reason is None)
    assert_roundtrip(server, outcome.lines[0])


def test_special_cases_roundtrip(server: InfluxDB1) -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "plant/{line}/{measurement}",
                    "options": {"types": {"big": "int", "count": "uint"}},
                }
            ],
            "database": {"url": server.url, "api": "v1", "database": DATABASE},
        }
    )
    payload = json.dumps(
        {
            "big": -9_223_372_036_854_775_808,
            "count": 9_223_372_036_854_775_807,
            "tiny": 5e-324,
            "note": 'multi\nline "quoted" \\ text',
            "unicode": "°C ✓",
        }
    ).encode()
    outcome = Pipeline(config).process("plant/Line 1,A=B/special", payload, ARRIVAL)
    assert outcome.reason is None, outcome.detail
    line = outcome.lines[0]
    server.write(DATABASE, line)
    row = stored_rows(server, "special")[0]
    assert row["line"] == "Line 1,A=B"
    assert row["big"] == -9_223_372_036_854_775_808
    assert row["count"] == 9_223_372_036_854_775_807
    assert row["tiny"] == 5e-324
    assert row["note"] == 'multi\nline "quoted" \\ text'
    assert row["unicode"] == "°C ✓"
    too_big = Pipeline(config).process(
        "plant/x/special", b'{"count": 18446744073709551615}', ARRIVAL
    )
    assert too_big.reason == "uint_out_of_range"
    assert too_big.detail is not None
    assert "uint_support" in too_big.detail
