"""Start real Mosquitto, InfluxDB 1.x and VictoriaMetrics servers for tests.

Each server runs as a child process of the test run and listens on free
127.0.0.1 ports only. Its config, data and log live in a directory that the
caller owns, normally a subdirectory of pytest's ``tmp_path``.

The versions these helpers were written against are the Debian 12 packages
mosquitto 2.0.11, influxdb 1.6.7~rc0 and victoria-metrics 1.79.5.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlencode

import pytest
import urllib3

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 30.0
INSTALL_COMMAND = "sudo scripts/install-deps.sh test"

# Debian installs mosquitto in /usr/sbin, which is not on a normal user's PATH.
_EXTRA_BINARY_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
_PROC_NET_TCP = Path("/proc/net/tcp")
_TCP_LISTEN = "0A"

T = TypeVar("T")


class ServerStartError(RuntimeError):
    """Error raised when a server exits or does not become ready in time.

    The message ends with the last lines of the server's log.
    """


class ServerStopError(RuntimeError):
    """Error raised when a server did not exit after SIGTERM and was killed."""


class HttpError(RuntimeError):
    """Error for an HTTP response with an unexpected status from a test server."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


# ---------------------------------------------------------------------------
# Ports, waiting and binaries


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free when this function returned.

    Another process can still take the port before the server binds it, so the
    server classes below pick new ports and retry when a first start fails
    with "address already in use".
    """
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct TCP ports on ``host`` that were free together."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def read_log_tail(path: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a log file, or a note if it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(log file {path} does not exist)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log file {path} is empty)"


def _startup_failure(
    name: str,
    problem: str,
    log_file: Path | None,
) -> ServerStartError:
    message = f"{name} {problem}"
    if log_file is not None:
        message += f"; last lines of {log_file}:\n{read_log_tail(log_file)}"
    return ServerStartError(message)


def _check_alive(
    name: str,
    process: subprocess.Popen[bytes] | None,
    log_file: Path | None,
    waiting_for: str,
) -> None:
    if process is not None and process.poll() is not None:
        raise _startup_failure(
            name,
            f"exited with code {process.returncode} while waiting for {waiting_for}",
            log_file,
        )


def wait_for_port(
    port: int,
    host: str = LOOPBACK,
    *,
    timeout: float = START_TIMEOUT,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
    name: str = "server",
) -> None:
    """Poll until ``host:port`` accepts TCP connections.

    With ``process`` on Linux, waits until that process itself listens on the
    port, so a listener of another program on the same port does not count.
    Otherwise waits until a TCP connect succeeds. Raises ServerStartError,
    with the last lines of ``log_file``, when the timeout in seconds passes or
    when ``process`` exits first.
    """
    target = f"{host}:{port}"
    check_owner = process is not None and _PROC_NET_TCP.exists()
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(name, process, log_file, target)
        if check_owner:
            assert process is not None
            if process_listens_on(process.pid, port, host):
                return
        elif _accepts_connections(host, port):
            return
        if time.monotonic() >= deadline:
            raise _startup_failure(
                name, f"timed out after {timeout} s waiting for {target}", log_file
            )
        time.sleep(0.01)


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def process_listens_on(pid: int, port: int, host: str = LOOPBACK) -> bool:
    """Return whether process ``pid`` has a TCP socket listening on ``host:port``.

    Reads /proc, so it works on Linux only, for IPv4 addresses and for
    processes whose file descriptors the caller may read.
    """
    # /proc/net/tcp prints the address as the hex of its 32-bit value in host
    # byte order, so 127.0.0.1 becomes 0100007F on little-endian machines.
    address = int.from_bytes(socket.inet_aton(host), sys.byteorder)
    local = f"{address:08X}:{port:04X}"
    inodes = set()
    for line in _PROC_NET_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == _TCP_LISTEN:
            inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) in inodes:
                return True
        except OSError:
            continue
    return False


def wait_for_http(
    url: str,
    *,
    timeout: float = START_TIMEOUT,
    statuses: Sequence[int] = (200, 204),
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
    name: str = "server",
) -> urllib3.BaseHTTPResponse:
    """Poll ``url`` with GET until the status is one of ``statuses``, then return.

    Returns the response with that status.

    Raises ServerStartError, with the last lines of ``log_file``, when the
    timeout in seconds passes or when ``process`` exits first. The message
    includes the last status or connection error seen.
    """
    deadline = time.monotonic() + timeout
    last_outcome = "no response"
    with urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=2.0)) as http:
        while True:
            _check_alive(name, process, log_file, url)
            try:
                response = http.request("GET", url)
            except urllib3.exceptions.HTTPError as error:
                last_outcome = f"{type(error).__name__}: {error}"
            else:
                if response.status in statuses:
                    return response
                last_outcome = f"HTTP {response.status}"
            if time.monotonic() >= deadline:
                raise _startup_failure(
                    name,
                    f"timed out after {timeout} s waiting for {url} ({last_outcome})",
                    log_file,
                )
            time.sleep(0.02)


def poll_until(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    description: str = "condition",
) -> T:
    """Call ``condition`` until it returns a truthy value and return that value.

    Raises TimeoutError, showing the last value, after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{description} not met within {timeout} s; last value: {value!r}"
            )
        time.sleep(interval)


def find_binary(binary: str) -> str | None:
    """Return the absolute path of ``binary`` from PATH or the sbin folders, or None."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_BINARY_DIRS])
    return shutil.which(binary, path=search_path)


def running_in_ci() -> bool:
    """Return whether the CI environment variable is ``true`` (any case) or ``1``."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def require_binary(binary: str, package: str) -> str:
    """Return the absolute path of ``binary``, or end the test when it is missing.

    A missing binary skips the test locally but fails it in CI, so that CI
    never passes by skipping the tests that need real servers.
    """
    path = find_binary(binary)
    if path is not None:
        return path
    message = (
        f"{binary} not found on PATH or in {', '.join(_EXTRA_BINARY_DIRS)}. "
        f"Install the Debian package {package} with: {INSTALL_COMMAND}"
    )
    if running_in_ci():
        ci_value = os.environ["CI"]
        pytest.fail(
            f"{message} (CI={ci_value}, so this fails instead of skipping)",
            pytrace=False,
        )
    pytest.skip(message)


def quote_identifier(name: str) -> str:
    """Quote an InfluxQL identifier such as a database or measurement name."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def series_selector(metric_name: str, **labels: str) -> str:
    """Build a PromQL series selector matching a metric name and exact label values."""
    matchers = [f"__name__={_promql_string(metric_name)}"]
    matchers += [
        f"{key}={_promql_string(value)}" for key, value in sorted(labels.items())
    ]
    return "{" + ",".join(matchers) + "}"


def _promql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# ---------------------------------------------------------------------------
# Process lifecycle shared by all servers

# Servers still running when the interpreter exits are killed, so that an
# interrupted test run leaves no broker or database behind.
_running_servers: set[ServerProcess] = set()


@atexit.register
def _kill_leftover_servers() -> None:
    for server in list(_running_servers):
        server.kill()


class ServerProcess:
    """One server binary run as a child process with its files in ``workdir``.

    Subclasses write the config, build the command line and decide when the
    server is ready. Ports are chosen once, so ``restart()`` keeps them.
    """

    name: ClassVar[str] = "server"

    def __init__(self, workdir: Path | str, binary: str) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.log_file = self.workdir / f"{self.name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        # Fixed ports come from the caller, so a port conflict must not move them.
        self._ports_fixed = False
        self._started_before = False

    # Hooks for subclasses.

    def _allocate_ports(self) -> None:
        raise NotImplementedError

    def _write_config(self) -> None:
        """Write the config file, unless the server takes only command-line flags."""

    def _command(self, binary_path: str) -> list[str]:
        raise NotImplementedError

    def _wait_until_ready(self, timeout: float) -> None:
        raise NotImplementedError

    def _after_start(self) -> None:
        """Run once the server is ready, before ``start()`` returns."""

    def _before_stop(self) -> None:
        """Release client resources such as HTTP connection pools."""

    # Public lifecycle.

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or None when it is not running."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the server process exists and has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the server and wait until it accepts requests.

        On the first start of an instance without caller-chosen ports, a port
        taken by another process in the meantime makes it pick new ports and
        try again, up to three times. Raises ServerStartError with the log tail.
        """
        if self.running:
            raise RuntimeError(f"{self.name} in {self.workdir} is already running")
        binary_path = find_binary(self.binary)
        if binary_path is None:
            raise FileNotFoundError(
                f"{self.binary} not found. Install it with: {INSTALL_COMMAND}"
            )
        attempts = 1 if self._ports_fixed or self._started_before else 3
        for attempt in range(1, attempts + 1):
            self._write_config()
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            self._spawn(binary_path)
            try:
                self._wait_until_ready(timeout)
                self._after_start()
            except ServerStartError:
                self.kill()
                if attempt < attempts and self._log_since(log_offset, _PORT_IN_USE):
                    self._allocate_ports()
                    continue
                raise
            except BaseException:
                self.kill()
                raise
            self._started_before = True
            return self
        raise AssertionError("unreachable: the last attempt returns or raises")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send SIGTERM, wait for the exit and return the exit code.

        Returns None when the server was not started. If it does not exit
        within ``timeout`` seconds, kills it and raises ServerStopError.
        """
        self._before_stop()
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_process()
                raise ServerStopError(
                    f"{self.name} (pid {process.pid}) did not exit within {timeout} s "
                    f"of SIGTERM and was killed; last lines of {self.log_file}:\n"
                    f"{self.log_tail()}"
                ) from None
        _running_servers.discard(self)
        return process.returncode

    def kill(self) -> None:
        """Send SIGKILL and wait for the exit. Server state not yet saved is lost."""
        self._before_stop()
        self._kill_process()

    def restart(self, timeout: float = START_TIMEOUT) -> Self:
        """Stop with SIGTERM and start again on the same ports with the same data."""
        self.stop()
        return self.start(timeout)

    def log_tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the server's log file."""
        return read_log_tail(self.log_file, lines)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {state} in {self.workdir}>"

    # Internals.

    def _spawn(self, binary_path: str) -> None:
        # The child inherits its own copy of the descriptor, so closing ours is safe.
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                self._command(binary_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        _running_servers.add(self)

    def _kill_process(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        _running_servers.discard(self)

    def _log_since(self, offset: int, pattern: re.Pattern[str]) -> bool:
        try:
            with open(self.log_file, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return False
        return pattern.search(text) is not None

    def _wait_for_ports(self, ports: Iterable[int], deadline: float) -> None:
        for port in ports:
            wait_for_port(
                port,
                timeout=_remaining(deadline),
                process=self._process,
                log_file=self.log_file,
                name=self.name,
            )


def _remaining(deadline: float) -> float:
    # Each later wait gets at least 0.1 s, so that after a slow first step the
    # error still names the port or URL that is missing.
    return max(deadline - time.monotonic(), 0.1)


# ---------------------------------------------------------------------------
# Mosquitto


class Mosquitto(ServerProcess):
    """A Mosquitto 2.x broker with persistence on a loopback port.

    The broker keeps all queued messages (``max_queued_messages 0``), so a
    slow subscriber in a test never loses QoS 0 messages to the default queue
    limit of 1000. ``max_inflight_messages`` caps the unacknowledged QoS 1 and
    2 messages that the broker sends to one client (Mosquitto's default is 20).
    Persistence is saved every ``autosave_interval`` seconds and on SIGTERM,
    so ``kill()`` loses at most the changes of that interval.
    With ``tls=True`` a second listener speaks MQTT over TLS with a
    certificate signed by a CA generated in ``workdir/tls``.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path | str,
        *,
        port: int | None = None,
        tls: bool = False,
        tls_port: int | None = None,
        binary: str = "mosquitto",
        autosave_interval: int = 1,
        max_inflight_messages: int = 100,
        extra_config: str = "",
    ) -> None:
        super().__init__(workdir, binary)
        self.config_file = self.workdir / "mosquitto.conf"
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.db_file = self.data_dir / "mosquitto.db"
        self.tls = tls
        self.autosave_interval = autosave_interval
        self.max_inflight_messages = max_inflight_messages
        self.extra_config = extra_config
        self._ca_file: Path | None = None
        self._cert_file: Path | None = None
        self._key_file: Path | None = None
        self._ports_fixed = port is not None or tls_port is not None
        self._allocate_ports()
        if port is not None:
            self.port = port
        if tls_port is not None:
            self.tls_port = tls_port

    @property
    def url(self) -> str:
        """Plain MQTT URL, ``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{LOOPBACK}:{self.port}"

    @property
    def tls_url(self) -> str:
        """MQTT over TLS URL ``mqtts://127.0.0.1:PORT``, only with ``tls=True``."""
        self._require_tls()
        return f"mqtts://{LOOPBACK}:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """PEM file of the CA that signed the broker's TLS certificate."""
        self._require_tls()
        if self._ca_file is None:
            self._create_tls_files()
        assert self._ca_file is not None
        return self._ca_file

    def _require_tls(self) -> None:
        if not self.tls:
            raise RuntimeError(
                "This broker has no TLS listener. Create it with tls=True."
            )

    def _allocate_ports(self) -> None:
        self.port, self.tls_port = free_ports(2)

    def _create_tls_files(self) -> None:
        self._ca_file, self._cert_file, self._key_file = create_tls_files(
            self.workdir / "tls"
        )

    def _write_config(self) -> None:
        lines = [
            "# Test broker config written by tests/components.py.",
            "per_listener_settings false",
            "allow_anonymous true",
            # Started as root, mosquitto would switch to the mosquitto user, which
            # cannot write to this root-owned folder. Without root this has no effect.
            "user root",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            f"autosave_interval {self.autosave_interval}",
            "max_queued_messages 0",
            f"max_inflight_messages {self.max_inflight_messages}",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            self.extra_config,
            "",
            f"listener {self.port} {LOOPBACK}",
        ]
        if self.tls:
            if self._ca_file is None:
                self._create_tls_files()
            lines += [
                f"listener {self.tls_port} {LOOPBACK}",
                f"cafile {self._ca_file}",
                f"certfile {self._cert_file}",
                f"keyfile {self._key_file}",
            ]
        self.config_file.write_text("\n".join(lines) + "\n")

    def _command(self, binary_path: str) -> list[str]:
        return [binary_path, "-c", str(self.config_file)]

    def _wait_until_ready(self, timeout: float) -> None:
        ports = [self.port, self.tls_port] if self.tls else [self.port]
        self._wait_for_ports(ports, time.monotonic() + timeout)


def create_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """Create a test CA and a server certificate for 127.0.0.1 and localhost.

    Uses the openssl command line tool and EC P-256 keys. Returns the paths
    of the CA certificate, the server certificate and the server key (PEM).
    Existing files in ``directory`` are reused.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert = directory / "ca.pem"
    ca_key = directory / "ca.key"
    server_cert = directory / "server.pem"
    server_key = directory / "server.key"
    if all(path.exists() for path in (ca_cert, server_cert, server_key)):
        return ca_cert, server_cert, server_key
    openssl = find_binary("openssl")
    if openssl is None:
        raise FileNotFoundError(
            "openssl, which creates the TLS test certificates, was not found. "
            f"Install it with: {INSTALL_COMMAND}"
        )
    key_options = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ]
    _run_openssl(
        openssl, "req", "-x509", *key_options, "-days", "3650",
        "-subj", "/CN=labdock test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", ca_key, "-out", ca_cert,
    )  # fmt: skip
    request = directory / "server.csr"
    _run_openssl(
        openssl, "req", "-new", *key_options, "-subj", "/CN=localhost",
        "-keyout", server_key, "-out", request,
    )  # fmt: skip
    extensions = directory / "server.ext"
    extensions.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        f"subjectAltName = IP:{LOOPBACK}, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    _run_openssl(
        openssl, "x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "825", "-extfile", extensions,
        "-out", server_cert,
    )  # fmt: skip
    return ca_cert, server_cert, server_key


def _run_openssl(openssl: str, *args: str | Path) -> None:
    command = [openssl, *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"openssl failed with code {result.returncode}: {' '.join(command)}\n"
            f"{result.stderr.strip()}"
        )


# ---------------------------------------------------------------------------
# HTTP servers


class HttpServerProcess(ServerProcess):
    """A server with an HTTP API on ``self.port``, reached through a connection pool."""

    port: int

    def __init__(self, workdir: Path | str, binary: str) -> None:
        super().__init__(workdir, binary)
        self._pool: urllib3.HTTPConnectionPool | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    def _before_stop(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | Sequence[tuple[str, Any]] | None = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        expected: Iterable[int] = (200, 204),
    ) -> urllib3.BaseHTTPResponse:
        """Send a request and return the response, or raise HttpError.

        ``params`` become the query string. Statuses outside ``expected`` raise
        HttpError with the status and response body.
        """
        if self._pool is None:
            self._pool = urllib3.HTTPConnectionPool(
                LOOPBACK,
                self.port,
                maxsize=4,
                retries=False,
                timeout=urllib3.Timeout(connect=5.0, read=60.0),
            )
        target = path + ("?" + urlencode(params) if params else "")
        response = self._pool.request(method, target, body=body, headers=headers)
        if response.status not in set(expected):
            text = response.data.decode(errors="replace").strip()
            raise HttpError(
                f"{method} {self.url}{path} returned HTTP {response.status}: {text}",
                response.status,
                text,
            )
        return response


class InfluxDB1(HttpServerProcess):
    """An InfluxDB 1.x server (``influxd``) with data, meta and WAL in ``workdir``.

    Only the HTTP API and the backup RPC port are opened, both on 127.0.0.1.
    Usage reporting, the monitor store, continuous queries and the UDP,
    Graphite, collectd and OpenTSDB listeners are disabled.
    """

    name = "influxd"

    def __init__(
        self,
        workdir: Path | str,
        *,
        port: int | None = None,
        rpc_port: int | None = None,
        binary: str = "influxd",
        log_level: str = "warn",
    ) -> None:
        super().__init__(workdir, binary)
        self.config_file = self.workdir / "influxdb.conf"
        self.meta_dir = self.workdir / "meta"
        self.data_dir = self.workdir / "data"
        self.wal_dir = self.workdir / "wal"
        self.log_level = log_level
        self.auth_enabled = False
        self.username = "admin"
        self.password = "labdock-test-password"
        self._admin_created = False
        self._ports_fixed = port is not None or rpc_port is not None
        self._allocate_ports()
        if port is not None:
            self.port = port
        if rpc_port is not None:
            self.rpc_port = rpc_port

    def _allocate_ports(self) -> None:
        self.port, self.rpc_port = free_ports(2)

    def _write_config(self) -> None:
        self.config_file.write_text(
            f"""\
# Test server config written by tests/components.py.
reporting-disabled = true
bind-address = "{LOOPBACK}:{self.rpc_port}"

[meta]
  dir = "{self.meta_dir}"

[data]
  dir = "{self.data_dir}"
  wal-dir = "{self.wal_dir}"
  query-log-enabled = false

[coordinator]
[retention]
[shard-precreation]

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{LOOPBACK}:{self.port}"
  auth-enabled = {"true" if self.auth_enabled else "false"}
  log-enabled = false

[logging]
  level = "{self.log_level}"

[subscriber]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

[continuous_queries]
  enabled = false
"""
        )

    def _command(self, binary_path: str) -> list[str]:
        return [binary_path, "-config", str(self.config_file)]

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._wait_for_ports([self.port, self.rpc_port], deadline)
        wait_for_http(
            f"{self.url}/ping",
            timeout=_remaining(deadline),
            statuses=(204,),
            process=self._process,
            log_file=self.log_file,
            name=self.name,
        )

    def _after_start(self) -> None:
        if self.auth_enabled and not self._admin_created:
            # InfluxDB 1.x accepts this one statement without credentials while
            # authentication is on and no admin user exists yet.
            self._create_admin()

    def _create_admin(self) -> None:
        password = self.password.replace("\\", "\\\\").replace("'", "\\'")
        self.query(
            None,
            f"CREATE USER {quote_identifier(self.username)} "
            f"WITH PASSWORD '{password}' WITH ALL PRIVILEGES",
            authenticate=False,
        )
        self._admin_created = True

    def set_auth(self, enabled: bool) -> None:
        """Turn HTTP authentication on or off, restarting the server if it runs.

        Enabling creates the admin user ``self.username`` with
        ``self.password`` once. The helper methods then send these
        credentials, so only requests made without them get HTTP 401.
        """
        if enabled == self.auth_enabled:
            return
        was_running = self.running
        if was_running:
            self.stop()
        self.auth_enabled = enabled
        if was_running:
            self.start()

    def _auth_headers(self, authenticate: bool) -> dict[str, str]:
        # InfluxDB 1.6 reads credentials from the URL or from basic auth, not
        # from a form body. Basic auth keeps the password out of URLs.
        if authenticate and self.auth_enabled and self._admin_created:
            return urllib3.make_headers(basic_auth=f"{self.username}:{self.password}")
        return {}

    def query(
        self,
        db: str | None,
        influxql: str,
        *,
        epoch: str | None = None,
        authenticate: bool = True,
    ) -> list[dict[str, Any]]:
        """Run InfluxQL through POST /query and return every row as a dict.

        Rows of all statements and series are concatenated. A series' tags
        (from GROUP BY) are included in each of its rows. ``epoch`` ("ns",
        "u", "ms", "s") returns times as integers instead of RFC 3339 strings.
        Raises HttpError on an HTTP error or a statement error.
        """
        fields = {"q": influxql}
        if db is not None:
            fields["db"] = db
        if epoch is not None:
            fields["epoch"] = epoch
        response = self.request(
            "POST",
            "/query",
            body=urlencode(fields),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                **self._auth_headers(authenticate),
            },
            expected=(200,),
        )
        payload = json.loads(response.data)
        rows: list[dict[str, Any]] = []
        for result in payload.get("results", []):
            if "error" in result:
                raise HttpError(
                    f"InfluxQL statement failed: {result['error']} (query: {influxql})",
                    response.status,
                    result["error"],
                )
            for series in result.get("series", []):
                columns = series["columns"]
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(tags)
                    row.update(zip(columns, values, strict=True))
                    rows.append(row)
        return rows

    def create_database(self, name: str) -> None:
        """Create a database; an existing one is left as it is."""
        self.query(None, f"CREATE DATABASE {quote_identifier(name)}")

    def write(
        self, db: str, lines: str | Iterable[str], *, precision: str = "ns"
    ) -> None:
        """Write line protocol through POST /write.

        Raises HttpError unless InfluxDB returns HTTP 204.
        """
        body = lines if isinstance(lines, str) else "\n".join(lines)
        self.request(
            "POST",
            "/write",
            params={"db": db, "precision": precision},
            body=body.encode(),
            headers=self._auth_headers(True),
            expected=(204,),
        )

    def count(self, db: str, measurement: str, field: str | None = None) -> int:
        """Return the number of points of a measurement in a database.

        With ``field``, counts the points that have that field. Without it,
        returns the largest per-field count, which equals the point count when
        at least one field is present in every point.
        """
        selection = f"COUNT({quote_identifier(field)})" if field else "COUNT(*)"
        rows = self.query(
            db, f"SELECT {selection} FROM {quote_identifier(measurement)}"
        )
        counts = [
            value
            for row in rows
            for column, value in row.items()
            if column.startswith("count") and isinstance(value, int)
        ]
        return max(counts, default=0)


class VictoriaMetrics(HttpServerProcess):
    """A single-node VictoriaMetrics server with its storage in ``workdir/data``.

    It runs with ``-search.latencyOffset=0s`` so that flushed samples are
    visible to queries at once, ``-retentionPeriod=100y`` so that old test
    timestamps are kept, and ``-search.disableCache`` so that repeated
    queries see new data.
    """

    name = "victoria-metrics"

    def __init__(
        self,
        workdir: Path | str,
        *,
        port: int | None = None,
        binary: str = "victoria-metrics",
        log_level: str = "WARN",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir, binary)
        self.data_dir = self.workdir / "data"
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self._ports_fixed = port is not None
        self.port = port if port is not None else free_port()

    def _allocate_ports(self) -> None:
        self.port = free_port()

    def _command(self, binary_path: str) -> list[str]:
        return [
            binary_path,
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            "-search.latencyOffset=0s",
            "-retentionPeriod=100y",
            "-search.disableCache",
            f"-loggerLevel={self.log_level}",
            *self.extra_args,
        ]

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._wait_for_ports([self.port], deadline)
        response = wait_for_http(
            f"{self.url}/health",
            timeout=_remaining(deadline),
            statuses=(200,),
            process=self._process,
            log_file=self.log_file,
            name=self.name,
        )
        if response.data.strip() != b"OK":
            raise _startup_failure(
                self.name,
                f"{self.url}/health returned {response.data[:80]!r}, expected OK",
                self.log_file,
            )

    def write(
        self, db: str | None, lines: str | Iterable[str], *, precision: str = "ns"
    ) -> None:
        """Write InfluxDB line protocol through POST /write.

        ``db`` becomes the label ``db`` of every series. VictoriaMetrics
        returns HTTP 204 even for invalid lines and only logs them.
        """
        body = lines if isinstance(lines, str) else "\n".join(lines)
        params = {"precision": precision}
        if db is not None:
            params["db"] = db
        self.request(
            "POST", "/write", params=params, body=body.encode(), expected=(204,)
        )

    def flush(self) -> None:
        """Flush buffered samples to storage (GET /internal/force_flush)."""
        self.request("GET", "/internal/force_flush", expected=(200,))

    def export(
        self,
        match: str | Sequence[str] = '{__name__!=""}',
        *,
        flush: bool = True,
    ) -> list[dict[str, Any]]:
        """Return the series matching one or more selectors from GET /api/v1/export.

        Each item has ``metric`` (labels including ``__name__``), ``values``
        and ``timestamps`` (milliseconds). Flushes first unless ``flush`` is
        False. Samples written a moment ago can still be missing, so poll
        with ``poll_until`` when a test needs them.
        """
        if flush:
            self.flush()
        selectors = [match] if isinstance(match, str) else list(match)
        response = self.request(
            "GET",
            "/api/v1/export",
            params=[("match[]", selector) for selector in selectors],
            expected=(200,),
        )
        return [json.loads(line) for line in response.data.splitlines() if line.strip()]

    def series_values(self, metric_name: str, **labels: str) -> list[float]:
        """Return the values of one series in timestamp order, or [] if it is absent.

        The series is selected by metric name and exact label values. Raises
        ValueError if more than one series matches, listing their labels.
        """
        series = self.export(series_selector(metric_name, **labels))
        if len(series) > 1:
            found = "; ".join(
                json.dumps(item["metric"], sort_keys=True) for item in series
            )
            raise ValueError(
                f"{len(series)} series match {metric_name} {labels}. "
                f"Add labels to select one of: {found}"
            )
        if not series:
            return []
        samples = sorted(zip(series[0]["timestamps"], series[0]["values"], strict=True))
        return [float(value) for _, value in samples]
