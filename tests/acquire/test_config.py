"""The acquisition configuration: sources, validation messages and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdock.acquire.config import (
    AcquireConfig,
    ConfigError,
    environment_overrides,
    load_config,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acquisition.yaml"
    path.write_text(text)
    return path


def test_defaults_are_valid() -> None:
    config = load_config(None, environ={})
    assert config.database.api == "sqlite"
    assert config.subscription_filters() == ["lab/+/+/+"]
    assert config.broker.qos == 1
    assert config.database.gzip is False


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broker: {url: 'mqtt://file:1883'}\n"
        "database: {url: 'http://file:8086', api: v1, database: lab}\n",
    )
    environ = {
        "LABDOCK_BROKER__URL": "mqtt://env:1883",
        "LABDOCK_BATCH__MAX_LINES": "250",
        "LABDOCK_DATABASE__GZIP": "true",
        "UNRELATED": "x",
    }
    config = load_config(
        path, environ=environ, overrides={"broker": {"url": "mqtts://flag:8883"}}
    )
    assert config.broker.url == "mqtts://flag:8883"
    assert config.broker.tls is True
    assert config.broker.port == 8883
    assert config.batch.max_lines == 250
    assert config.database.gzip is True
    assert config.database.url == "http://file:8086"


def test_every_problem_reported_with_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broker: {url: 'http://x', keepalive: 2, bogus: 1}\n"
        "mappings:\n"
        "  - topic: 'lab/#/x'\n"
        "  - topic: 'lab/{room}/{device}'\n"
        "  - topic: 'lab/{room}/{measurement}'\n    format: nosuch\n"
        "database: {url: 'http://db:8086', api: v2}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    problems = caught.value.problems
    text = "\n".join(problems)
    assert all(problem.startswith(str(path)) for problem in problems)
    assert "broker.url: Value error" not in text
    assert "broker.url: unsupported scheme 'http'" in text
    assert "broker.keepalive:" in text
    assert "broker.bogus: unknown key" in text
    assert "mappings.0.topic:" in text
    assert "must be the last level" in text
    assert "has no {measurement} level; set measurement:" in text
    assert "unknown format 'nosuch'; choose one of" in text
    assert "api v2 needs bucket: and org:" in text


def test_decoder_options_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            environ={},
            overrides={
                "mappings": [{"topic": "a/{measurement}", "options": {"nope": 1}}]
            },
        )
    assert "invalid options for format 'json': options.nope" in caught.value.problems[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "the top level must be a mapping"),
        ("broker: {url: [unclosed", "invalid YAML"),
    ],
)
def test_malformed_file(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    assert problem in caught.value.problems[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.yaml", environ={})
    assert "cannot read the configuration" in caught.value.problems[0]


def test_environment_values_stay_text() -> None:
    overrides = environment_overrides(
        {
            "LABDOCK_SPOOL__MAX_BYTES": "1048576",
            "LABDOCK_BROKER__CLIENT_ID": "0123",
            "LABDOCK_MAPPINGS": "[{topic: 'a/{measurement}'}]",
            "LABDOCK_SHUTDOWN_TIMEOUT": "5",
            "LABDOCK_CONFIG": "/etc/labdock/acquisition.yaml",
            "LABDOCK_SERVICES_DIR": "/opt/services",
        }
    )
    assert overrides == {
        "spool": {"max_bytes": "1048576"},
        "broker": {"client_id": "0123"},
        "mappings": [{"topic": "a/{measurement}"}],
        "shutdown_timeout": "5",
    }
    config = load_config(
        None,
        environ={"LABDOCK_BROKER__CLIENT_ID": "0123", "LABDOCK_BROKER__PROTOCOL": "5"},
    )
    assert config.broker.client_id == "0123"
    assert config.broker.protocol == "5"


def test_error_names_its_source(tmp_path: Path) -> None:
    path = write(tmp_path, "broker: {keepalive: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(
            path,
            environ={"LABDOCK_SHUTDOWN_TIMEOUT": "soon"},
            overrides={"http": {"listen": "127.0.0.1"}},
        )
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith(f"{path}: broker.keepalive:") for p in problems)
    assert any(
        p.startswith("command line: http.listen: invalid listen address")
        for p in problems
    )
    assert any(
        p.startswith("environment variable LABDOCK_SHUTDOWN_TIMEOUT: shutdown_timeout:")
        for p in problems
    )


@pytest.mark.parametrize(
    ("broker", "problem"),
    [
        ({"url": "mqtt://b:99999"}, "invalid port"),
        ({"url": "mqtt://b:1883", "ca_file": "/ca.pem"}, "no TLS would be used"),
        (
            {"url": "mqtts://b:8883", "cert_file": "/c.pem"},
            "cert_file and key_file go together",
        ),
    ],
)
def test_broker_settings_checked(broker: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={}, overrides={"broker": broker})
    assert problem in caught.value.problems[0]


def test_sqlite_paths() -> None:
    relative = load_config(
        None, environ={}, overrides={"database": {"url": "sqlite:///a/b.db"}}
    )
    absolute = load_config(
        None, environ={}, overrides={"database": {"url": "sqlite:////a/b.db"}}
    )
    assert relative.database.sqlite_path == Path("a/b.db")
    assert absolute.database.sqlite_path == Path("/a/b.db")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://:8086", "no host in 'http://:8086'"),
        ("http://db:abc", "invalid port in 'http://db:abc'"),
        ("http://db:0", "invalid port in 'http://db:0'"),
        ("http://db:", "invalid port in 'http://db:'"),
        ("http://[::1]:", "invalid port in 'http://[::1]:'"),
        ("https://db:70000", "invalid port in 'https://db:70000'"),
    ],
)
def test_database_url_checked(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            environ={},
            overrides={"database": {"url": url, "api": "v1", "database": "lab"}},
        )
    assert problem in caught.value.problems[0]


def test_database_url_error_names_source() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            environ={"LABDOCK_DATABASE__URL": "http://:8086"},
            overrides={"database": {"api": "v1", "database": "lab"}},
        )
    problem = caught.value.problems[0]
    assert problem.startswith("environment variable LABDOCK_DATABASE__URL:")
    assert "database.url: no host in 'http://:8086'" in problem


@pytest.mark.parametrize("url", ["mqtt://b:0", "mqtt://b:"])
def test_broker_port_zero_or_empty_rejected(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={}, overrides={"broker": {"url": url}})
    assert f"invalid port in {url!r}" in caught.value.problems[0]


@pytest.mark.parametrize("url", ["http://[::1]", "http://[::1]:8086"])
def test_database_ipv6_url_accepted(url: str) -> None:
    config = load_config(
        None,
        environ={},
        overrides={"database": {"url": url, "api": "v1", "database": "lab"}},
    )
    assert config.database.url == url


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("", "shutdown_timeout", "five"),
        ("spool", "max_bytes", "1GB"),
        ("broker", "qos", 0),
    ],
)
def test_type_error_names_value(section: str, key: str, value: object) -> None:
    overrides = {section: {key: value}} if section else {key: value}
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={}, overrides=overrides)
    problem = caught.value.problems[0]
    assert f"got {value!r}" in problem


def test_decoder_option_error_names_value() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            environ={},
            overrides={
                "mappings": [
                    {"topic": "a/{measurement}", "options": {"types": {"t": "integer"}}}
                ]
            },
        )
    assert "options.types.t:" in caught.value.problems[0]
    assert "(got 'integer')" in caught.value.problems[0]


@pytest.mark.parametrize(
    "mapping",
    [
        {"topic": "lab/{time}/{measurement}"},
        {"topic": "lab/{room}/{measurement}", "tags": {"time": "x"}},
    ],
)
def test_reserved_tag_key_rejected(mapping: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={}, overrides={"mappings": [mapping]})
    problem = caught.value.problems[0]
    assert "mappings.0" in problem
    assert "tag key 'time'" in problem


def _load_zigbee2mqtt(topic: str, options: dict[str, str]) -> AcquireConfig:
    mapping = {
        "topic": topic,
        "format": "zigbee2mqtt",
        "measurement": "zigbee",
        "options": options,
    }
    return load_config(None, environ={}, overrides={"mappings": [mapping]})


@pytest.mark.parametrize(
    ("topic", "options"),
    [
        ("z2m/#", {}),
        ("lab/zigbee2mqtt/#", {}),
        ("zigbee2mqtt/#", {"base_topic": "home/z2m"}),
    ],
)
def test_zigbee2mqtt_topic_outside_base_rejected(
    topic: str, options: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load_zigbee2mqtt(topic, options)
    problem = caught.value.problems[0]
    assert f"topic {topic!r}" in problem
    assert "options.base_topic" in problem


@pytest.mark.parametrize(
    ("topic", "options"),
    [
        ("zigbee2mqtt", {}),
        ("+", {}),
        ("home/z2m", {"base_topic": "home/z2m"}),
        ("home/{device}", {"base_topic": "home/z2m"}),
    ],
)
def test_zigbee2mqtt_topic_at_base_rejected(
    topic: str, options: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load_zigbee2mqtt(topic, options)
    problem = caught.value.problems[0]
    assert f"topic {topic!r}" in problem
    assert "can't match a topic below Zigbee2MQTT's base topic" in problem


@pytest.mark.parametrize(
    ("topic", "options"),
    [
        ("zigbee2mqtt/#", {}),
        ("+/#", {}),
        ("#", {}),
        ("zigbee2mqtt/{device}", {}),
        ("home/z2m/{device#}", {"base_topic": "home/z2m"}),
        ("home/#", {"base_topic": "home/z2m"}),
    ],
)
def test_zigbee2mqtt_topic_under_base_accepted(
    topic: str, options: dict[str, str]
) -> None:
    config = _load_zigbee2mqtt(topic, options)
    assert config.mappings[0].topic == topic
