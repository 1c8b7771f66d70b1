"""Topic templates: matching, placeholders, filters and their overlaps."""

from __future__ import annotations

import pytest

from labdock.acquire.config import AcquireConfig
from labdock.acquire.topics import (
    TemplateError,
    TopicTemplate,
    filter_covers,
    minimal_filters,
)


@pytest.mark.parametrize(
    ("template", "topic", "expected"),
    [
        (
            "lab/{room}/{device}/{measurement}",
            "lab/r1/d1/env",
            {"room": "r1", "device": "d1", "measurement": "env"},
        ),
        ("lab/{room}/{device}/{measurement}", "lab/r1/d1", None),
        ("lab/{room}/{device}/{measurement}", "lab/r1/d1/env/extra", None),
        ("lab/+/{device}", "lab/x/d7", {"device": "d7"}),
        ("lab/#", "lab", {}),
        ("lab/#", "lab/a/b/c", {}),
        ("lab/{rest#}", "lab/a/b", {"rest": "a/b"}),
        ("lab/{room}/env", "lab//env", {"room": ""}),
        ("plant/{line}/env", "plant/Line 1,A=B/env", {"line": "Line 1,A=B"}),
        ("+/{device}", "$SYS/broker", None),
        ("$SYS/{name}", "$SYS/uptime", {"name": "uptime"}),
        ("other/{x}", "lab/x", None),
    ],
)
def test_template_match(
    template: str, topic: str, expected: dict[str, str] | None
) -> None:
    assert TopicTemplate.parse(template).match(topic) == expected


def test_template_filter() -> None:
    template = TopicTemplate.parse("lab/{room}/+/{measurement}/{rest#}")
    assert template.filter == "lab/+/+/+/#"
    assert template.names == ("room", "measurement", "rest")


@pytest.mark.parametrize(
    "template",
    [
        "",
        "lab/#/x",
        "lab/{a#}/x",
        "lab/a+b",
        "lab/{room}/{room}",
        "$share/g/lab/#",
        "lab/{bad",
    ],
)
def test_template_invalid(template: str) -> None:
    with pytest.raises(TemplateError):
        TopicTemplate.parse(template)


@pytest.mark.parametrize("level", ["{}", "{a b}", "{1st}", "{#}"])
def test_template_bad_placeholder_named(level: str) -> None:
    with pytest.raises(TemplateError) as raised:
        TopicTemplate.parse(f"lab/{level}/temp")
    assert "invalid placeholder" in str(raised.value)
    assert repr(level) in str(raised.value)


def test_template_mixed_level_named() -> None:
    with pytest.raises(TemplateError) as raised:
        TopicTemplate.parse("lab/room{n}/temp")
    assert "mixes text with a wildcard" in str(raised.value)


@pytest.mark.parametrize(
    ("broad", "narrow", "covers"),
    [
        ("lab/+/+/+", "lab/+/+/door", True),
        ("lab/#", "lab/+/x", True),
        ("lab/#", "lab", True),
        ("lab/+/+/door", "lab/+/+/+", False),
        ("lab/+", "lab/+/x", False),
        ("lab/+/x", "lab/#", False),
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
    ],
)
def test_filter_covers(broad: str, narrow: str, covers: bool) -> None:
    assert filter_covers(broad, narrow) is covers


def test_overlapping_filters_subscribed_once() -> None:
    assert minimal_filters(["lab/+/+/door", "lab/+/+/+", "lab/+/+/+", "plant/#"]) == [
        "lab/+/+/+",
        "plant/#",
    ]
    config = AcquireConfig.model_validate(
        {
            "broker": {"share_group": "ingest"},
            "mappings": [
                {
                    "topic": "lab/{room}/{device}/door",
                    "measurement": "door",
                    "format": "value",
                },
                {"topic": "lab/{room}/{device}/{measurement}"},
            ],
        }
    )
    assert config.subscription_filters() == ["$share/ingest/lab/+/+/+"]
