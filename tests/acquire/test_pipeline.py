"""The pipeline's own rules: routing, time windows and counted drops."""

from __future__ import annotations

from typing import Any

from labdock.acquire.config import AcquireConfig
from labdock.acquire.decoders._sparkplug_schema import Payload
from labdock.acquire.decoders.sparkplug import DOUBLE, RebirthRequest
from labdock.acquire.pipeline import Pipeline

ARRIVAL = 1_764_000_000_000_000_000
SECOND = 1_000_000_000


def make(timestamps: dict[str, Any], **database: Any) -> Pipeline:
    config: dict[str, Any] = {
        "mappings": [
            {
                "topic": "plant/{device}/{measurement}",
                "options": {"timestamp": {"path": "ts", "format": "s"}},
            },
        ],
        "timestamps": timestamps,
    }
    if database:
        config["database"] = database
    return Pipeline(AcquireConfig.model_validate(config))


def payload(seconds_from_arrival: int) -> bytes:
    return b'{"t": 1.5, "ts": %d}' % (ARRIVAL // SECOND + seconds_from_arrival)


def test_device_time_inside_window_kept() -> None:
    pipeline = make(
        {"max_past": 3600, "max_future": 60, "time_source_tag": "time_source"}
    )
    outcome = pipeline.process("plant/dev01/env", payload(-1800), ARRIVAL)
    assert outcome.lines == [
        f"env,device=dev01,time_source=device t=1.5 {ARRIVAL - 1800 * SECOND}"
    ]


def test_future_time_deadlettered() -> None:
    outcome = make({"max_future": 60}).process(
        "plant/dev01/env", payload(3600), ARRIVAL
    )
    assert outcome.reason == "timestamp_out_of_window"
    assert outcome.detail is not None
    assert "after the arrival time" in outcome.detail


def test_old_time_restamped_with_tag() -> None:
    pipeline = make(
        {"max_past": 60, "action": "restamp", "time_source_tag": "time_source"}
    )
    outcome = pipeline.process("plant/dev01/env", payload(-3600), ARRIVAL)
    assert outcome.lines == [f"env,device=dev01,time_source=arrival t=1.5 {ARRIVAL}"]
    assert outcome.restamped == 1
    assert outcome.dropped == {}


def test_arrival_time_when_no_device_time() -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [{"topic": "plant/{device}/{measurement}"}],
            "timestamps": {"time_source_tag": "src"},
        }
    )
    outcome = Pipeline(config).process("plant/dev01/env", b'{"t": 2}', ARRIVAL)
    assert outcome.lines == [f"env,device=dev01,src=arrival t=2 {ARRIVAL}"]


def test_first_matching_mapping_wins() -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "lab/{room}/door",
                    "measurement": "door",
                    "format": "value",
                    "options": {"field": "open", "type": "bool"},
                },
                {"topic": "lab/{room}/{measurement}", "tags": {"site": "north"}},
            ]
        }
    )
    pipeline = Pipeline(config)
    assert pipeline.process("lab/r1/door", b"ON", ARRIVAL).lines == [
        f"door,room=r1 open=true {ARRIVAL}"
    ]
    assert pipeline.process("lab/r1/env", b'{"t": 3}', ARRIVAL).lines == [
        f"env,room=r1,site=north t=3 {ARRIVAL}"
    ]


def test_unmatched_topic_is_deadlettered() -> None:
    outcome = make({}).process("other/topic", b"{}", ARRIVAL)
    assert outcome.reason == "no_mapping"
    assert outcome.detail == "topic 'other/topic' matches no mapping's template"


def test_uint_written_signed_for_v1() -> None:
    config = {
        "mappings": [
            {
                "topic": "plant/{device}/{measurement}",
                "options": {"types": {"n": "uint"}},
            }
        ],
    }
    v1 = AcquireConfig.model_validate(
        {
            **config,
            "database": {"url": "http://db:8086", "api": "v1", "database": "lab"},
        }
    )
    v2 = AcquireConfig.model_validate(
        {
            **config,
            "database": {
                "url": "http://db:8086",
                "api": "v2",
                "bucket": "b",
                "org": "o",
            },
        }
    )
    assert Pipeline(v1).process("plant/d/env", b'{"n": 7}', ARRIVAL).lines == [
        f"env,device=d n=7i {ARRIVAL}"
    ]
    assert Pipeline(v2).process("plant/d/env", b'{"n": 7}', ARRIVAL).lines == [
        f"env,device=d n=7u {ARRIVAL}"
    ]


def sparkplug_data(seq: int) -> bytes:
    message = Payload(timestamp=ARRIVAL // 1_000_000, seq=seq)
    message.metrics.add(name="Flow", alias=1, datatype=DOUBLE, double_value=2.5)
    return bytes(message.SerializeToString())


def test_rebirth_request_queued_for_deadletter() -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "spBv1.0/#",
                    "measurement": "plc",
                    "format": "sparkplug_b",
                    "options": {"rebirth_request": True},
                },
                {"topic": "plant/{device}/{measurement}"},
            ]
        }
    )
    pipeline = Pipeline(config)
    outcome = pipeline.process("spBv1.0/g/NDATA/e", sparkplug_data(1), ARRIVAL)
    assert outcome.reason == "sparkplug_no_birth"
    assert pipeline.process("plant/d/env", b'{"t": 1}', ARRIVAL).lines
    assert pipeline.take_rebirth_requests() == [RebirthRequest("g", "e", "no_birth")]
    assert pipeline.take_rebirth_requests() == []


def test_rebirth_request_queued_with_lines() -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "spBv1.0/#",
                    "measurement": "plc",
                    "format": "sparkplug_b",
                    "options": {"rebirth_request": True},
                }
            ]
        }
    )
    pipeline = Pipeline(config)
    assert pipeline.process("spBv1.0/g/NBIRTH/e", sparkplug_data(0), ARRIVAL).lines
    assert pipeline.take_rebirth_requests() == []
    outcome = pipeline.process("spBv1.0/g/NDATA/e", sparkplug_data(5), ARRIVAL)
    assert outcome.lines == [f"plc,edge_node=e,group=g Flow=2.5 {ARRIVAL}"]
    assert outcome.dropped == {"sparkplug_seq_gap": 4}
    assert pipeline.take_rebirth_requests() == [RebirthRequest("g", "e", "seq_gap")]


def test_rebirth_request_off_queues_nothing() -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {"topic": "spBv1.0/#", "measurement": "plc", "format": "sparkplug_b"}
            ]
        }
    )
    pipeline = Pipeline(config)
    outcome = pipeline.process("spBv1.0/g/NDATA/e", sparkplug_data(1), ARRIVAL)
    assert outcome.reason == "sparkplug_no_birth"
    assert pipeline.take_rebirth_requests() == []
