"""How the writer handles each kind of write outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from scripted_server import Reply, Request, ScriptedServer

from components import poll_until
from labdock.acquire.config import AcquireConfig
from labdock.acquire.metrics import Metrics
from labdock.acquire.spool import DeadLetterStore, Spool
from labdock.acquire.writer import Response, Verdict, Writer, classify


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (204, "", Verdict.OK),
        (200, "", Verdict.OK),
        (None, "", Verdict.RETRY),
        (429, "", Verdict.RETRY),
        (500, "internal error", Verdict.RETRY),
        (502, "", Verdict.RETRY),
        (503, "", Verdict.RETRY),
        (504, "", Verdict.RETRY),
        (401, "", Verdict.UNAUTHORIZED),
        (403, "", Verdict.UNAUTHORIZED),
        (413, "", Verdict.TOO_LARGE),
        (400, "unable to parse 'x': missing fields", Verdict.REJECTED),
        (422, "points beyond retention policy", Verdict.REJECTED),
        (500, 'partial write: field type conflict: input field "t"', Verdict.REJECTED),
        (404, 'database not found: "nodb"', Verdict.HOLD),
        (500, "retention policy not found: rp", Verdict.HOLD),
        (200, "<html>proxy</html>", Verdict.HOLD),
        (200, '{"ok": true}', Verdict.OK),
        (405, "", Verdict.HOLD),
    ],
)
def test_classify_outcome(status: int | None, body: str, verdict: Verdict) -> None:
    assert classify(Response(status, body)) is verdict


def make_config(url: str, tmp_path: Path, **batch: object) -> AcquireConfig:
    return AcquireConfig.model_validate(
        {
            "database": {"url": url, "api": "v1", "database": "lab", "gzip": True},
            "spool": {"directory": str(tmp_path / "spool")},
            "batch": {"max_delay": 0.05, **batch},
            "retry": {"initial": 0.05, "maximum": 0.2},
        }
    )


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool", 1 << 30)
    yield spool
    spool.close()


def run_writer(config: AcquireConfig, spool: Spool, lines: list[str]) -> Writer:
    now = time.time_ns()
    spool.append([(now, "plant/dev01/env", line) for line in lines])
    writer = Writer(config, spool, Metrics())
    writer.start()
    return writer


def lines_of(server: ScriptedServer, statuses: dict[int, int]) -> list[str]:
    found = []
    for request in server.writes():
        if statuses.get(id(request), 0) < 300:
            found.extend(request.body.decode().splitlines())
    return found


class TypeConflictServer:
    """Reply 500 'field type conflict' (as InfluxDB 2.x has) when a body
    contains an integer `t`, and store the rest of such a batch, as a partial
    write does."""

    def __init__(self) -> None:
        self.stored: list[str] = []

    def __call__(self, request: Request) -> Reply:
        if request.method == "GET" or not request.body:
            return Reply(204)
        lines = request.body.decode().splitlines()
        good = [line for line in lines if " t=22i" not in line]
        self.stored.extend(good)
        if len(good) != len(lines):
            return Reply(
                500,
                '{"code":"internal error","message":"partial write: field type '
                'conflict: input field \\"t\\" on measurement \\"env\\" is type '
                'integer, already exists as type float dropped=1"}',
            )
        return Reply(204)


def test_type_conflict_on_500_deadletters_only_offending_line(
    tmp_path: Path, spool: Spool
) -> None:
    responder = TypeConflictServer()
    with ScriptedServer(responder) as server:
        lines = [
            f"env,device=dev01 t={20 + n}.5 {1700000000000000000 + n}"
            for n in range(40)
        ]
        lines[17] = "env,device=dev01 t=22i 1700000000000000017"
        writer = run_writer(make_config(server.url, tmp_path), spool, lines)
        poll_until(lambda: spool.messages == 0, timeout=10, description="spool drained")
        writer.stop(2)
    expected = set(lines) - {lines[17]}
    assert expected <= set(responder.stored)
    assert lines[17] not in responder.stored
    assert len(server.writes()) < 20, "the batch was retried instead of split"
    store = DeadLetterStore(tmp_path / "spool")
    letters = store.list()
    store.close()
    assert [letter.payload.decode() for letter in letters] == [lines[17]]
    assert letters[0].stage == "write"
    assert "field type conflict" in letters[0].detail


def test_413_splits_batch_and_deadletters_oversize_line(
    tmp_path: Path, spool: Spool
) -> None:
    limit = 100_000
    stored: list[str] = []

    def body_limit(request: Request) -> Reply:
        if request.method == "GET" or not request.body:
            return Reply(204)
        if len(request.body) > limit:
            return Reply(413, '{"code":"request too large"}')
        stored.extend(request.body.decode().splitlines())
        return Reply(204)

    with ScriptedServer(body_limit) as server:
        fields = ",".join(f"{c}=1" for c in "abcdefghijklmnopqrstuvwxyz")
        lines = [
            f"env,device=dev{n:05d} {fields} {1700000000000000000 + n}"
            for n in range(2_000)
        ]
        huge = 'env,device=huge note="' + "x" * 120_000 + '" 1700000000000000000'
        lines.insert(1_000, huge)
        config = make_config(server.url, tmp_path, max_bytes=1 << 22)
        writer = run_writer(config, spool, lines)
        poll_until(lambda: spool.messages == 0, timeout=30, description="spool drained")
        writer.stop(2)
    assert set(stored) == set(lines) - {huge}
    store = DeadLetterStore(tmp_path / "spool")
    letters = store.list()
    store.close()
    assert len(letters) == 1
    assert letters[0].reason == "line_too_large"


def test_413_on_small_line_holds_data(tmp_path: Path, spool: Spool) -> None:
    def tiny_limit(request: Request) -> Reply:
        if request.method == "GET" or not request.body:
            return Reply(204)
        return Reply(413, "<html>Request Entity Too Large</html>")

    with ScriptedServer(tiny_limit) as server:
        writer = run_writer(make_config(server.url, tmp_path), spool, ["env t=1 1"])
        poll_until(
            lambda: (
                writer.unready_reason is not None
                and "body size limit" in writer.unready_reason
            ),
            timeout=10,
            description="unready with the fix",
        )
        assert spool.messages == 1
        writer.stop(0.2)
    store = DeadLetterStore(tmp_path / "spool")
    assert store.counts() == {}
    store.close()


def test_html_success_page_is_not_stored(tmp_path: Path, spool: Spool) -> None:
    def proxy_page(request: Request) -> Reply:
        if request.method == "GET" or not request.body:
            return Reply(204)
        return Reply(200, "<html><body>Welcome</body></html>")

    with ScriptedServer(proxy_page) as server:
        writer = run_writer(make_config(server.url, tmp_path), spool, ["env t=1 1"])
        poll_until(lambda: len(server.writes()) >= 3, timeout=10, description="retries")
        assert spool.messages == 1
        assert not writer.ready.is_set()
        writer.stop(0.2)


def test_missing_database_holds_on_probe(tmp_path: Path, spool: Spool) -> None:
    def missing(request: Request) -> Reply:
        return Reply(404, '{"error":"database not found: \\"lab\\""}')

    with ScriptedServer(missing) as server:
        writer = Writer(make_config(server.url, tmp_path), spool, Metrics())
        writer.start()
        assert not writer.ready.is_set()
        assert writer.unready_reason is not None
        assert "database not found" in writer.unready_reason
        writer.stop(0.2)
        assert server.requests[0].method == "POST"
        assert server.requests[0].body == b""


def test_failed_probe_is_logged(tmp_path: Path, spool: Spool) -> None:
    def missing(request: Request) -> Reply:
        return Reply(404, '{"error":"database not found: \\"lab\\""}')

    with ScriptedServer(missing) as server:
        writer = Writer(make_config(server.url, tmp_path), spool, Metrics())
        with structlog.testing.capture_logs() as events:
            writer.start()
        writer.stop(0.2)
    failures = [e for e in events if e["event"] == "database.probe_failed"]
    assert len(failures) == 1
    assert failures[0]["url"] == server.url
    assert "database not found" in failures[0]["error"]


def test_429_honours_retry_after(tmp_path: Path, spool: Spool) -> None:
    attempts: list[float] = []

    def throttled(request: Request) -> Reply:
        if request.method == "GET" or not request.body:
            return Reply(204)
        attempts.append(request.time)
        if len(attempts) == 1:
            return Reply(429, "slow down", {"Retry-After": "1"})
        return Reply(204)

    with ScriptedServer(throttled) as server:
        writer = run_writer(make_config(server.url, tmp_path), spool, ["env t=1 1"])
        poll_until(lambda: spool.messages == 0, timeout=10, description="spool drained")
        writer.stop(2)
        retries = writer.metrics.registry.get_sample_value(
            "labdock_acquire_write_retries_total", {"cause": "429"}
        )
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.9
    assert retries == 1


def test_401_holds_data_and_reports_unready(tmp_path: Path, spool: Spool) -> None:
    state = {"authorized": False}

    def auth(request: Request) -> Reply:
        if request.method == "GET" or not request.body:
            return Reply(204)
        if not state["authorized"]:
            return Reply(401, '{"error":"authorization failed"}')
        return Reply(204)

    with ScriptedServer(auth) as server:
        writer = run_writer(
            make_config(server.url, tmp_path), spool, ["env t=1 1", "env t=2 2"]
        )
        poll_until(lambda: len(server.writes()) >= 3, timeout=10, description="retries")
        assert not writer.ready.is_set()
        assert writer.unready_reason is not None
        assert "401" in writer.unready_reason
        assert spool.messages == 2
        state["authorized"] = True
        poll_until(lambda: spool.messages == 0, timeout=10, description="spool drained")
        assert writer.ready.is_set()
        writer.stop(2)


def test_5xx_and_refused_connections_retry(tmp_path: Path, spool: Spool) -> None:
    replies = iter([Reply(503), Reply(502), Reply(500, "oops")])

    def flaky(request: Request) -> Reply:
        if request.method == "GET" or not request.body:
            return Reply(204)
        return next(replies, Reply(204))

    with ScriptedServer(flaky) as server:
        writer = run_writer(make_config(server.url, tmp_path), spool, ["env t=1 1"])
        poll_until(lambda: spool.messages == 0, timeout=10, description="spool drained")
        writer.stop(2)
    assert len(server.writes()) == 4

    refused = make_config("http://127.0.0.1:9", tmp_path)
    writer = run_writer(refused, spool, ["env t=2 2"])
    poll_until(
        lambda: (
            (
                writer.metrics.registry.get_sample_value(
                    "labdock_acquire_write_retries_total", {"cause": "unavailable"}
                )
                or 0
            )
            >= 2
        ),
        timeout=10,
        description="retries on a refused connection",
    )
    assert spool.messages == 1
    writer.stop(0.2)


def test_v2_and_v3_requests(tmp_path: Path, spool: Spool) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    for api, extra, path, auth in [
        (
            "v2",
            {"org": "lab", "bucket": "raw"},
            "/api/v2/write?org=lab&bucket=raw&precision=ns",
            "Token s3cret-token",
        ),
        (
            "v3",
            {"database": "raw"},
            "/api/v3/write_lp?db=raw&precision=nanosecond",
            "Bearer s3cret-token",
        ),
    ]:
        with ScriptedServer() as server:
            config = AcquireConfig.model_validate(
                {
                    "database": {
                        "url": server.url,
                        "api": api,
                        "token_file": str(token_file),
                        "gzip": True,
                        **extra,
                    },
                    "spool": {"directory": str(tmp_path / "spool")},
                    "batch": {"max_delay": 0.05},
                }
            )
            writer = run_writer(config, spool, ["env t=1 1"])
            poll_until(
                lambda: spool.messages == 0, timeout=10, description="spool drained"
            )
            writer.stop(2)
            request = server.writes()[0]
        assert request.path == path
        assert request.headers["Authorization"] == auth
        assert request.headers["Content-Encoding"] == "gzip"
        assert request.body == b"env t=1 1\n"


def test_default_request_body_uncompressed(tmp_path: Path, spool: Spool) -> None:
    with ScriptedServer() as server:
        config = AcquireConfig.model_validate(
            {
                "database": {"url": server.url, "api": "v1", "database": "lab"},
                "spool": {"directory": str(tmp_path / "spool")},
                "batch": {"max_delay": 0.05},
            }
        )
        writer = run_writer(config, spool, ["env t=1 1"])
        poll_until(lambda: spool.messages == 0, timeout=10, description="spool drained")
        writer.stop(2)
        request = server.writes()[0]
    assert "Content-Encoding" not in request.headers
    assert request.body == b"env t=1 1\n"


def test_split_keeps_newline_in_string_field() -> None:
    from labdock.acquire.lineprotocol import parse_line_protocol, split_lines
    from labdock.acquire.points import Point, encode_point

    first = encode_point(Point("log", {"host": 'a"b'}, {"msg": 'two\nlines "q" \\'}, 1))
    second = encode_point(Point("log", {"host": "c d"}, {"msg": "plain"}, 2))
    text = first + "\n" + second
    assert split_lines(text) == [first, second]
    assert split_lines("m v=1 1\nm v=2 2") == ["m v=1 1", "m v=2 2"]
    assert (
        parse_line_protocol(split_lines(text)[0])[0].fields["msg"]
        == 'two\nlines "q" \\'
    )
