"""The acquisition service's configuration schema.

One pydantic model is the single source for validation, defaults, the
environment overrides and the reference docs. A configuration comes from a
YAML file, then `LABDOCK_*` environment variables, then command-line flags,
each overriding the one before. Secrets are never values here: the schema
takes the path of the file that contains them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from labdock.acquire.decoders import (
    RESERVED_KEY,
    create_decoder,
    registry,
    topic_problem,
)
from labdock.acquire.topics import TemplateError, TopicTemplate, minimal_filters

ENV_PREFIX = "LABDOCK_"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_host_and_port(url: str, example: str) -> None:
    """Raise ValueError when `url` has no host or a port outside 1 to 65535."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}; use {example}")
    try:
        port = parts.port  # urlsplit checks the number and range when read
    except ValueError:
        port = 0
    # A port of 0, or an empty one as in "host:", would fall back to the
    # scheme's default port without notice.
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise ValueError(f"invalid port in {url!r}; use a number from 1 to 65535")


def read_secret(path: Path | None, what: str) -> str | None:
    """Read a secret from a file, stripping one trailing newline."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            [
                f"{what}: cannot read {path}: {error.strerror}; create the file or "
                "fix the path"
            ]
        ) from error
    return text[:-1] if text.endswith("\n") else text


class BrokerConfig(_Model):
    """The MQTT broker connection."""

    url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL: mqtt://host:port, or mqtts://host:port for TLS.",
        examples=["mqtts://emqx.lab.example.org:8883"],
    )
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT protocol version.")
    retained: Literal["store", "skip"] = Field(
        "store",
        description=(
            "What to do with retained messages, which the broker sends when a "
            "subscription is new: store them stamped with the arrival time, "
            "or skip them (counted) because they repeat a device's last state."
        ),
    )
    client_id: str = Field(
        "labdock-acquire",
        min_length=1,
        description=(
            "Fixed client id, so that the broker keeps this client's session "
            "(and queues its messages) while it is down. Each replica needs its own."
        ),
    )
    share_group: str | None = Field(
        None,
        description=(
            "Subscribe through the shared subscription $share/<group>/<filter>, "
            "so that replicas with the same group split the messages."
        ),
    )
    username: str | None = Field(None, description="Username for the broker.")
    password_file: Path | None = Field(
        None, description="File containing the broker password."
    )
    ca_file: Path | None = Field(
        None, description="CA certificate (PEM) that signs the broker's certificate."
    )
    cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS."
    )
    key_file: Path | None = Field(
        None, description="Private key (PEM) of the client certificate."
    )
    tls_insecure: bool = Field(
        False,
        description="Skip the check of the broker certificate's host name. Tests only.",
    )
    keepalive: int = Field(30, ge=5, le=65535, description="Keepalive in seconds.")
    session_expiry: int = Field(
        7 * 24 * 3600,
        ge=0,
        description=(
            "Seconds the broker keeps the session after a disconnect (MQTT 5). "
            "MQTT 3.1.1 sessions last until the broker drops them."
        ),
    )
    qos: Literal[1, 2] = Field(1, description="Subscription QoS.")
    reconnect_min: float = Field(
        0.5, gt=0, description="First reconnect delay in seconds."
    )
    reconnect_max: float = Field(
        30.0, gt=0, description="Cap on the reconnect delay in seconds."
    )
    max_inflight: int = Field(
        1000,
        ge=1,
        le=65535,
        description=(
            "Receive maximum: how many unacknowledged QoS 1 messages the broker "
            "may send at once (MQTT 5)."
        ),
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        # YAML and environment variables read `protocol: 5` as a number.
        return str(value) if isinstance(value, int | float) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(
                f"unsupported scheme {parts.scheme!r} in {value!r}; use "
                "mqtt://host:port or mqtts://host:port"
            )
        _check_host_and_port(value, "mqtt://host:port")
        return value

    @model_validator(mode="after")
    def _check_tls_files(self) -> BrokerConfig:
        if not self.tls:
            given = [
                name
                for name in ("ca_file", "cert_file", "key_file")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set but the URL {self.url!r} is plain "
                    "MQTT, so no TLS would be used; use mqtts:// or remove them"
                )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "cert_file and key_file go together for client certificates; "
                "set both or neither"
            )
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


class MappingConfig(_Model):
    """A topic template and the decoder that turns its messages into points."""

    topic: str = Field(
        description=(
            "Topic template: an MQTT filter whose levels may be {name} "
            "placeholders. {measurement} sets the measurement, other names "
            "become tags."
        ),
        examples=["lab/{room}/{device}/{measurement}"],
    )
    measurement: str | None = Field(
        None,
        description="Measurement when the template has no {measurement} level.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Static tags added to every point."
    )
    format: str = Field(
        "json", description="Payload decoder name (see the decoder reference)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the decoder."
    )
    subscribe: bool = Field(
        True,
        description=(
            "Subscribe to this template's filter. Set false when a broader "
            "mapping's filter already covers it."
        ),
    )

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        try:
            TopicTemplate.parse(value)
        except TemplateError as error:
            raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _check_decoder(self) -> MappingConfig:
        names = registry()
        if self.format not in names:
            raise ValueError(
                f"unknown format {self.format!r}; choose one of "
                + ", ".join(sorted(names))
            )
        try:
            decoder = create_decoder(self.format, self.options)
        except ValidationError as error:
            problems = "; ".join(
                f"options.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                + ("" if e["type"] == "value_error" else _given_value(e.get("input")))
                for e in error.errors()
            )
            raise ValueError(
                f"invalid options for format {self.format!r}: {problems}"
            ) from None
        template = TopicTemplate.parse(self.topic)
        problem = topic_problem(decoder, template.filter.split("/"))
        if problem:
            raise ValueError(f"topic {self.topic!r}: {problem}")
        if "measurement" not in template.names and not self.measurement:
            raise ValueError(
                f"topic {self.topic!r} has no {{measurement}} level; set "
                "measurement: to name one"
            )
        # Each point would get this tag, so every message would become a
        # reserved_key dead letter.
        if RESERVED_KEY in template.names:
            raise ValueError(
                f"topic {self.topic!r} names the tag key {RESERVED_KEY!r}, which "
                f"InfluxDB can't store; rename the {{{RESERVED_KEY}}} placeholder"
            )
        if RESERVED_KEY in self.tags:
            raise ValueError(
                f"tags: the tag key {RESERVED_KEY!r} can't be stored by InfluxDB; "
                "rename it"
            )
        return self

    @property
    def template(self) -> TopicTemplate:
        return TopicTemplate.parse(self.topic)


ApiVersion = Literal["v1", "v2", "v3", "sqlite"]


class DatabaseConfig(_Model):
    """The database that points are written to."""

    url: str = Field(
        "sqlite:///./labdock-points.sqlite",
        description=(
            "Database URL: http(s)://host:port of InfluxDB (or any server that "
            "takes line protocol), or sqlite:///relative/path or "
            "sqlite:////absolute/path for the embedded store."
        ),
        examples=["http://influxdb:8086"],
    )
    api: ApiVersion | None = Field(
        None,
        description=(
            "Write API: v1 (/write), v2 (/api/v2/write), v3 (/api/v3/write_lp) "
            "or sqlite. Defaults to sqlite for a sqlite:// URL and v2 otherwise."
        ),
    )
    database: str | None = Field(None, description="Database name (v1 and v3).")
    retention_policy: str | None = Field(None, description="Retention policy (v1).")
    username: str | None = Field(None, description="Username (v1).")
    password_file: Path | None = Field(
        None, description="File containing the password (v1)."
    )
    org: str | None = Field(None, description="Organization (v2).")
    bucket: str | None = Field(None, description="Bucket (v2).")
    token_file: Path | None = Field(
        None, description="File containing the API token (v2 and v3)."
    )
    ca_file: Path | None = Field(
        None, description="CA certificate (PEM) for an https:// database URL."
    )
    timeout: float = Field(
        10.0, gt=0, description="Seconds one write request may take."
    )
    # Off by default: the database usually runs on the same host, where
    # compressing costs CPU at both ends and saves nothing.
    gzip: bool = Field(
        False,
        description=(
            "Compress request bodies with gzip. Worth it over a slow link to a "
            "remote database; on one host it only costs CPU at both ends."
        ),
    )
    uint_support: bool | None = Field(
        None,
        description=(
            "Write unsigned integer fields with the u suffix. InfluxDB 1.x OSS "
            "rejects them, so by default (None) v1 writes them as signed "
            "integers, and a value above 2**63-1 becomes a dead letter."
        ),
    )

    # A field validator, not part of _check_api, so that an error names the
    # file, environment variable or flag that set the URL.
    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme in ("http", "https"):
            _check_host_and_port(value, f"{scheme}://host:port")
        return value

    @model_validator(mode="after")
    def _check_api(self) -> DatabaseConfig:
        scheme = urlsplit(self.url).scheme
        if self.api is None:
            self.api = "sqlite" if scheme == "sqlite" else "v2"
        if self.uint_support is None:
            self.uint_support = self.api != "v1"
        if self.api == "sqlite":
            if scheme != "sqlite":
                raise ValueError(
                    f"api sqlite needs a sqlite:///path URL, not {self.url!r}"
                )
            return self
        if scheme not in ("http", "https"):
            raise ValueError(
                f"database url {self.url!r} must start with http:// or https:// "
                f"for api {self.api}"
            )
        if self.api == "v1" and not self.database:
            raise ValueError("api v1 needs database: (the InfluxDB database name)")
        if self.api == "v2" and not (self.bucket and self.org is not None):
            hint = (
                "; for InfluxDB 1.x set api: v1 to use database:"
                if self.database
                else ""
            )
            raise ValueError(
                f"api v2 needs bucket: and org: (use org: '' if unused){hint}"
            )
        if self.api == "v3" and not self.database:
            raise ValueError("api v3 needs database:")
        return self

    @property
    def sqlite_path(self) -> Path:
        """The store's path: sqlite:///relative/path or sqlite:////absolute/path."""
        return Path(
            self.url.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
        )


class BatchConfig(_Model):
    """Write batches: a batch is sent when any bound is reached."""

    max_lines: int = Field(5000, ge=1, description="Lines per write request.")
    max_bytes: int = Field(
        4_000_000, ge=1024, description="Uncompressed bytes per write request."
    )
    max_delay: float = Field(
        1.0, gt=0, description="Seconds a line may wait for its batch to fill."
    )


class RetryConfig(_Model):
    """Backoff for writes that can succeed later (429, 5xx, timeouts)."""

    initial: float = Field(0.5, gt=0, description="First delay in seconds.")
    maximum: float = Field(30.0, gt=0, description="Cap on the delay in seconds.")
    retry_after_max: float = Field(
        600.0, gt=0, description="Cap in seconds on a server's Retry-After."
    )


class SpoolConfig(_Model):
    """The durable on-disk spool between the broker and the database."""

    directory: Path = Field(
        Path("./spool"), description="Directory of the spool and dead letters."
    )
    max_bytes: int = Field(
        1 << 30,
        ge=1 << 16,
        description=(
            "Byte limit of the spooled lines. When it is reached the service "
            "stops acknowledging, so the broker holds the rest."
        ),
    )
    commit_interval: float = Field(
        0.05,
        gt=0,
        le=5,
        description=(
            "Seconds between spool commits (each an fsync). Messages are "
            "acknowledged to the broker after their commit."
        ),
    )
    commit_max_messages: int = Field(
        2000, ge=1, description="Messages that force a commit before the interval."
    )


class TimeWindowConfig(_Model):
    """The window of device timestamps that are accepted."""

    max_past: float | None = Field(
        None,
        gt=0,
        description=(
            "Seconds before the arrival time beyond which a device time is "
            "invalid (set it to the retention period). None: no limit."
        ),
    )
    max_future: float | None = Field(
        300.0,
        gt=0,
        description="Seconds after the arrival time beyond which a device time is invalid.",
    )
    action: Literal["deadletter", "restamp"] = Field(
        "deadletter",
        description=(
            "What happens to a point with an invalid device time: deadletter it, "
            "or restamp it with the arrival time."
        ),
    )
    time_source_tag: str | None = Field(
        None,
        description=(
            "Tag that records which time a point carries: device or arrival. "
            "None: no tag."
        ),
    )

    @field_validator("time_source_tag")
    @classmethod
    def _check_time_source_tag(cls, value: str | None) -> str | None:
        if value == RESERVED_KEY:
            raise ValueError(
                f"the tag key {RESERVED_KEY!r} can't be stored by InfluxDB; "
                "choose another name, such as time_source"
            )
        return value


class HttpConfig(_Model):
    """The health and metrics endpoint."""

    listen: str = Field(
        "127.0.0.1:9108",
        description=(
            "host:port, or [address]:port for IPv6, for /healthz, /readyz and "
            "/metrics; empty to disable."
        ),
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        if not value:
            return value
        host, separator, port = value.rpartition(":")
        if not separator or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"invalid listen address {value!r}; use host:port, such as "
                "127.0.0.1:9108 or 0.0.0.0:9108 in a container"
            )
        return value


class LogConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = Field(
        "auto",
        description="console on a terminal, json otherwise (auto), or forced.",
    )


class AcquireConfig(_Model):
    """The whole configuration of `labdock acquire`."""

    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    mappings: list[MappingConfig] = Field(
        default_factory=lambda: [
            MappingConfig(topic="lab/{room}/{device}/{measurement}")
        ],
        description="Topic mappings; the first whose template matches wins.",
    )
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    timestamps: TimeWindowConfig = Field(default_factory=TimeWindowConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    shutdown_timeout: float = Field(
        8.0,
        gt=0,
        description=(
            "Seconds SIGTERM may spend flushing before the service exits; keep "
            "it below the container's stop grace period (10 s in Docker)."
        ),
    )

    @field_validator("mappings")
    @classmethod
    def _check_mappings(cls, value: list[MappingConfig]) -> list[MappingConfig]:
        if not value:
            raise ValueError("at least one mapping is needed")
        return value

    def subscription_filters(self) -> list[str]:
        """Return the topic filters to subscribe to, shared where configured.

        Filters covered by a broader one are left out, so that a message
        matching two mappings arrives once.
        """
        filters = minimal_filters(
            [mapping.template.filter for mapping in self.mappings if mapping.subscribe]
        )
        if self.broker.share_group:
            filters = [f"$share/{self.broker.share_group}/{f}" for f in filters]
        return filters


class ConfigError(Exception):
    """A configuration with problems; `problems` lists each with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn `LABDOCK_SECTION__KEY=value` variables into a nested mapping.

    A top-level key has no section: `LABDOCK_SHUTDOWN_TIMEOUT`. Values stay
    text, which the schema converts (`5`, `true`), except YAML lists and
    mappings (`[a, b]`, `{k: v}`), so that `0123` stays a string.
    """
    overrides: dict[str, Any] = {}
    top_level = set(AcquireConfig.model_fields)
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if len(path) == 1 and path[0] not in top_level:
            continue  # LABDOCK_CONFIG and the variables of other commands
        value: Any = raw
        if raw.lstrip().startswith(("[", "{")):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
        _set_path(overrides, path, value)
    return overrides


def _leaf_keys(
    data: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> set[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = set()
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            keys |= _leaf_keys(value, path)
        else:
            keys.add(path)
    return keys


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _given_value(value: Any) -> str:
    """Return ` (got VALUE)` for a scalar value, or "" for a list or mapping."""
    if not isinstance(value, str | int | float | bool):
        return ""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f" (got {text})"


def _format_errors(
    error: ValidationError, source: str, sources: Mapping[tuple[str, ...], str]
) -> list[str]:
    problems = []
    for item in error.errors():
        location = tuple(str(part) for part in item["loc"])
        path = ".".join(location) or "(top level)"
        for length in range(len(location), 0, -1):
            if location[:length] in sources:
                source = sources[location[:length]]
                break
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key; check its spelling against the reference"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] != "value_error":
            # pydantic's own messages don't show the value, but the messages
            # of this schema's validators (value_error) already do.
            message += _given_value(item.get("input"))
        problems.append(f"{source}: {path}: {message}")
    return problems


def load_config(
    path: Path | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AcquireConfig:
    """Load and validate a configuration.

    Raises ConfigError listing every problem at once, each with its path.
    """
    data: dict[str, Any] = {}
    source = str(path) if path else "configuration"
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(
                [f"{path}: cannot read the configuration: {error.strerror}"]
            ) from error
        except yaml.YAMLError as error:
            raise ConfigError([f"{path}: invalid YAML: {error}"]) from error
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                [
                    f"{path}: the top level must be a mapping of sections, "
                    f"not {type(loaded).__name__}"
                ]
            )
        data = loaded
    from_environment = environment_overrides(os.environ if environ is None else environ)
    data = _merge(data, from_environment)
    # Errors name where the bad value came from: the file, the environment
    # or a command-line flag.
    sources = {
        key: f"environment variable {ENV_PREFIX}{'__'.join(key).upper()}"
        for key in _leaf_keys(from_environment)
    }
    if overrides:
        data = _merge(data, overrides)
        sources.update({key: "command line" for key in _leaf_keys(overrides)})
    try:
        return AcquireConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, source, sources)) from None
