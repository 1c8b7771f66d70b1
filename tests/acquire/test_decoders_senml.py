"""The senml decoder against the RFC 8428 examples and hand-written packs.

Each exN.json of the SenML examples in the shared corpora folder (beside the
repository) must decode to the records of its exN.gen.resolved.json. Records
without an absolute time mean "now": their resolved times hold the clock of
the run that generated the files, so those are compared relative to each
other, while this decoder is given a fixed arrival time.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from labdock.acquire.decoders import DecodeContext, DecodeError, create_decoder
from labdock.acquire.points import Point

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "senml"
NOW = 1_764_000_000_123_456_789
RELATIVE_LIMIT = 2**28
FIELDS = {"v": "value", "vs": "string_value", "vb": "boolean_value", "vd": "data_value"}


def decode_pack(payload: bytes, now: int = NOW, **options: Any) -> list[Point]:
    context = DecodeContext("lab/senml", "senml", {"site": "north"}, now)
    return create_decoder("senml", options).decode(payload, context)


def raw_times(pack: list[dict[str, Any]]) -> list[Decimal]:
    """Return bt + t of every record with a value, as the pack sends them."""
    base = Decimal(0)
    times = []
    for record in pack:
        if "bt" in record:
            base = Decimal(str(record["bt"]))
        if any(label in record for label in ("v", "vs", "vb", "vd", "s")):
            times.append(base + Decimal(str(record.get("t", 0))))
    return times


def corpus_examples() -> list[str]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        p.name.removesuffix(".json")
        for p in CORPUS.glob("ex*.json")
        if ".gen" not in p.name
    )


def test_corpus_is_present() -> None:
    assert CORPUS.is_dir(), f"the SenML examples are missing from {CORPUS}"
    assert len(corpus_examples()) >= 13


@pytest.mark.parametrize("example", corpus_examples())
def test_corpus_example(example: str) -> None:
    pack_bytes = (CORPUS / f"{example}.json").read_bytes()
    points = decode_pack(pack_bytes)
    resolved_path = CORPUS / f"{example}.gen.resolved.json"
    if not resolved_path.exists():
        assert points
        return
    resolved = json.loads(resolved_path.read_text(), parse_float=Decimal)
    if example == "ex7":
        # The generator left the vd record out of this resolved file.
        assert points[3].fields == {"data_value": "aGkgCg"}
        points = points[:3]
    assert len(points) == len(resolved)
    sent_times = raw_times(json.loads(pack_bytes, parse_float=Decimal))
    relative = [i for i, t in enumerate(sent_times) if t < RELATIVE_LIMIT]
    for point, record in zip(points, resolved, strict=True):
        assert point.measurement == "senml"
        assert point.tags["site"] == "north"
        assert point.tags["name"] == record["n"]
        assert point.tags.get("unit") == record.get("u")
        kind = next(label for label in FIELDS if label in record)
        expected = record[kind]
        if kind == "v":
            expected = float(expected)
        assert point.fields == {FIELDS[kind]: expected}
    for index, (point, record) in enumerate(zip(points, resolved, strict=True)):
        expected_ns = int(Decimal(record["t"]) * 10**9)
        if index in relative:
            # The generator's clock corresponds to this decoder's arrival time.
            generator_now = (
                Decimal(resolved[relative[0]]["t"]) - sent_times[relative[0]]
            )
            expected_ns = NOW + int((Decimal(record["t"]) - generator_now) * 10**9)
        assert point.time_ns == expected_ns


def test_example_with_base_time_and_relative_offsets() -> None:
    points = decode_pack((CORPUS / "ex3.json").read_bytes())
    assert [p.time_ns for p in points] == [
        1_276_020_076_001_000_000,
        1_276_020_071_001_000_000,
        1_276_020_072_001_000_000,
        1_276_020_073_001_000_000,
        1_276_020_074_001_000_000,
        1_276_020_075_001_000_000,
        1_276_020_076_001_000_000,
    ]


def test_fractional_relative_time() -> None:
    points = decode_pack((CORPUS / "ex13.json").read_bytes())
    assert [p.time_ns for p in points] == [
        1_320_078_429_000_000_000,
        1_320_078_429_000_000_000,
        1_320_078_429_100_000_000,
        1_320_078_429_100_000_000,
    ]


def test_relative_times_from_arrival() -> None:
    points = decode_pack(
        b'[{"n":"a","v":1,"t":-5.5},{"n":"b","v":2},{"n":"c","v":3,"t":10}]'
    )
    assert [p.time_ns for p in points] == [
        NOW - 5_500_000_000,
        NOW,
        NOW + 10_000_000_000,
    ]


def test_base_value_and_sum_resolved() -> None:
    points = decode_pack(
        b'[{"bn":"meter:","bv":100,"bs":5000,"n":"energy","v":1.5,"s":2,"u":"Wh"},'
        b'{"n":"energy","v":-0.5}]'
    )
    assert points[0].fields == {"value": 101.5, "sum": 5002.0}
    assert points[1].fields == {"value": 99.5, "sum": 5000.0}
    assert points[0].tags["unit"] == "Wh"
    assert "unit" not in points[1].tags


def test_base_unit_and_name_carried_forward() -> None:
    points = decode_pack(
        b'[{"bn":"dev1/","bu":"Cel","n":"t1","v":1},{"n":"t2","v":2,"u":"K"}]'
    )
    assert [p.tags["name"] for p in points] == ["dev1/t1", "dev1/t2"]
    assert [p.tags["unit"] for p in points] == ["Cel", "K"]


def test_record_without_unit_has_no_unit_tag() -> None:
    (point,) = decode_pack(b'[{"n":"door","vb":true,"t":1700000000}]')
    assert point.tags == {"site": "north", "name": "door"}
    assert point.fields == {"boolean_value": True}
    assert point.time_ns == 1_700_000_000_000_000_000


def test_absolute_time_exact_to_the_nanosecond() -> None:
    (point,) = decode_pack(b'[{"n":"a","v":1,"t":1700000000.123456789}]')
    assert point.time_ns == 1_700_000_000_123_456_789


def test_tag_names_configurable() -> None:
    (point,) = decode_pack(
        b'[{"n":"a","u":"V","v":1}]', name_tag="sensor", unit_tag="u"
    )
    assert point.tags == {"site": "north", "sensor": "a", "u": "V"}


def test_unknown_label_ignored() -> None:
    (point,) = decode_pack(b'[{"n":"a","v":1,"foo":{"x":1}}]')
    assert point.fields == {"value": 1.0}


def test_nan_value_left_for_pipeline() -> None:
    (point,) = decode_pack(b'[{"n":"a","v":NaN}]')
    assert point.fields["value"] != point.fields["value"]


@pytest.mark.parametrize(
    ("payload", "expected_reason"),
    [
        (b"", "empty_payload"),
        (b"\xff", "invalid_utf8"),
        (b'[{"n":"a","v":1}', "json_decode_error"),
        (b'{"n":"a","v":1}', "senml_not_array"),
        (b"[1]", "senml_not_array"),
        (b"[]", "senml_no_value"),
        (b'[{"bn":"a"}]', "senml_no_value"),
        (b'[{"n":"a"}]', "senml_no_value"),
        (b'[{"n":"a","v":"1"}]', "senml_invalid_field"),
        (b'[{"n":"a","v":true}]', "senml_invalid_field"),
        (b'[{"n":1,"v":1}]', "senml_invalid_field"),
        (b'[{"n":"a","vb":1}]', "senml_invalid_field"),
        (b'[{"n":"a","vd":"***"}]', "senml_invalid_field"),
        (b'[{"n":"a","v":1,"t":NaN}]', "senml_invalid_field"),
        (b'[{"n":"a","v":1,"vs":"x"}]', "senml_multiple_values"),
        (b'[{"n":"","v":1}]', "senml_invalid_name"),
        (b'[{"n":"-a","v":1}]', "senml_invalid_name"),
        (b'[{"n":"a b","v":1}]', "senml_invalid_name"),
        (b'[{"bver":11,"n":"a","v":1}]', "senml_unsupported"),
        (b'[{"bver":0,"n":"a","v":1}]', "senml_invalid_field"),
        (b'[{"n":"a","v":1,"foo_":1}]', "senml_unsupported"),
        (b'[{"n":"a","v":1e400}]', "float_out_of_range"),
        (b'[{"n":"a","v":1,"t":1700000000123}]', "timestamp_unit_mismatch"),
        (b'[{"n":"a","v":1,"t":1e30}]', "timestamp_out_of_range"),
        (b'[{"n":"a","v":1,"t":-1e30}]', "timestamp_out_of_range"),
        (b'[{"n":"a","v":1e309}]', "float_out_of_range"),
    ],
)
def test_rejection(payload: bytes, expected_reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_pack(payload)
    assert caught.value.reason == expected_reason
    assert caught.value.detail
