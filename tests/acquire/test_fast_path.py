"""The fast path for flat JSON objects gives the lines of the full path.

`Pipeline.fast_line` takes the common message (a flat object under the
`json` decoder with no option that changes its values) past the decoder's
general machinery. Whatever it returns must be what `Pipeline.process`
returns for the same message, and whatever it can't take exactly it must
leave to `process` by returning None.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from labdock.acquire.config import AcquireConfig
from labdock.acquire.pipeline import Pipeline

ARRIVAL = 1_764_000_000_123_456_789


def make(options: dict[str, Any] | None = None, **sections: Any) -> Pipeline:
    mapping: dict[str, Any] = {"topic": "lab/{room}/{device}/{measurement}"}
    if options is not None:
        mapping["options"] = options
    return Pipeline(AcquireConfig.model_validate({"mappings": [mapping], **sections}))


def check_same(pipeline: Pipeline, topic: str, payload: bytes) -> str | None:
    """Assert that the fast path agrees with the full path; return its line."""
    line = pipeline.fast_line(topic, payload, ARRIVAL)
    if line is not None:
        outcome = pipeline.process(topic, payload, ARRIVAL)
        assert outcome.reason is None, outcome.detail
        assert not outcome.dropped
        assert outcome.lines == [line]
    return line


def test_flat_reading_takes_the_fast_path() -> None:
    payload = b'{"temp": 21.5, "co2": 412, "door": true, "state": "ok"}'
    line = check_same(make(), "lab/r1/d1/env", payload)
    assert line == (
        f'env,device=d1,room=r1 co2=412,door=true,state="ok",temp=21.5 {ARRIVAL}'
    )


def test_time_source_tag_is_in_the_series() -> None:
    pipeline = make(timestamps={"time_source_tag": "source"})
    line = check_same(pipeline, "lab/r1/d1/env", b'{"t": 1}')
    assert line == f"env,device=d1,room=r1,source=arrival t=1 {ARRIVAL}"


def test_auto_numbers_keep_integers() -> None:
    line = check_same(make({"number_type": "auto"}), "lab/r/d/env", b'{"n": 7}')
    assert line == f"env,device=d,room=r n=7i {ARRIVAL}"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": {"b": 1}}',  # nested
        b'{"a": [1, 2]}',  # array
        b'{"a": null, "b": 1}',  # a counted null
        b'{"time": 1, "b": 1}',  # the reserved key
        b'{"": 1}',  # an empty key
        b'{"a\\\\,b": 1}',  # a key InfluxDB would read back otherwise
        b'{"big": 9007199254740993}',  # an integer a float rounds
        b'{"huge": 1e19}',  # maybe an integer beyond 64 bits
        b'{"s": "say \\"hi\\""}',  # a string that needs escaping
        b'{"s": "caf\\u00e9"}',  # non-ASCII text
        b"{}",
        b"[1]",
        b"42",
        b"{not json",
        b'{"a": NaN}',
        b"",
    ],
)
def test_other_payloads_take_full_path(payload: bytes) -> None:
    assert make().fast_line("lab/r/d/env", payload, ARRIVAL) is None


@pytest.mark.parametrize(
    "options",
    [
        {"fields": ["a"]},
        {"exclude": ["a"]},
        {"tags": ["a"]},
        {"rename": {"a": "b"}},
        {"types": {"a": "int"}},
        {"strings": "ignore"},
        {"records": ""},
        {"timestamp": {"path": "ts", "format": "s"}},
        {"measurement": "kind"},
    ],
)
def test_value_options_disable_fast_path(
    options: dict[str, Any],
) -> None:
    assert make(options).fast_line("lab/r/d/env", b'{"a": 1}', ARRIVAL) is None


def test_unencodable_tag_takes_full_path() -> None:
    pipeline = make()
    topic = "lab/r/bad\\/env"
    assert pipeline.fast_line(topic, b'{"a": 1}', ARRIVAL) is None
    assert pipeline.process(topic, b'{"a": 1}', ARRIVAL).reason == "encode_error"


def test_unmatched_topic_takes_full_path() -> None:
    assert make().fast_line("other", b'{"a": 1}', ARRIVAL) is None


def test_other_decoders_take_full_path() -> None:
    pipeline = Pipeline(
        AcquireConfig.model_validate(
            {"mappings": [{"topic": "v/{measurement}", "format": "value"}]}
        )
    )
    assert pipeline.fast_line("v/t", b"21.5", ARRIVAL) is None


scalars = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.booleans(),
    st.text(max_size=12),
    st.none(),
)
documents = st.dictionaries(st.text(max_size=8), scalars, max_size=6)


@settings(max_examples=400, deadline=None)
@given(document=documents, number_type=st.sampled_from(["float", "auto"]))
def test_fast_fields_match_full_path(
    document: dict[str, Any], number_type: str
) -> None:
    pipeline = make({"number_type": number_type})
    # The standard library writes integers beyond 64 bits too.
    payload = json.dumps(document).encode()
    check_same(pipeline, "lab/r1/d1/env", payload)


@settings(max_examples=200, deadline=None)
@given(room=st.text(min_size=1, max_size=6), device=st.text(min_size=1, max_size=6))
def test_fast_series_matches_full_path(room: str, device: str) -> None:
    if "/" in room + device or "+" in room + device or "#" in room + device:
        return
    check_same(make(), f"lab/{room}/{device}/env", b'{"t": 20.5}')


def test_time_tag_rejected_at_load() -> None:
    # A tag key `time` would make every message a reserved_key dead letter,
    # so the configuration can't name one.
    for config in [
        {"mappings": [{"topic": "lab/{time}/{measurement}"}]},
        {"timestamps": {"time_source_tag": "time"}},
    ]:
        with pytest.raises(ValidationError, match="tag key 'time'"):
            AcquireConfig.model_validate(config)


def test_remembered_float_texts_stay_exact() -> None:
    pipeline = make()
    for payload in [b'{"a": 0.0}', b'{"a": -0.0}', b'{"a": 21.5}', b'{"a": 21.5}']:
        check_same(pipeline, "lab/r/d/env", payload)
    assert pipeline.fast_line("lab/r/d/env", b'{"a": -0.0}', ARRIVAL) == (
        f"env,device=d,room=r a=-0 {ARRIVAL}"
    )
