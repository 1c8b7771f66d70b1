"""Harbor: rendering harbor.yml and the API calls, against a mock on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from labdock.cli import main
from labdock.stack import harbor, rotate, secrets, tree


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str
    body: Any


@dataclass
class MockHarbor:
    """A stand-in for Harbor's API that records every request."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    ping_result: dict[str, Any] = field(default_factory=lambda: {"success": True})


@pytest.fixture()
def mock_harbor() -> Iterator[MockHarbor]:
    state = MockHarbor(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            state.requests.append(
                Recorded(
                    self.command,
                    self.path,
                    self.headers.get("Authorization", ""),
                    json.loads(raw) if raw else None,
                )
            )
            status = state.status.get(self.path, 200)
            body = b""
            if self.path == "/api/v2.0/ldap/ping" and status == 200:
                body = json.dumps(state.ping_result).encode()
            elif status >= 400:
                body = b'{"errors":[{"code":"FORBIDDEN","message":"denied"}]}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_POST = do_GET = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    tree.lay_down(site, domain="lab.test", email="ops@lab.test")
    secrets.init_secrets(site, chown=False)
    return site


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


def test_ldap_command_puts_configuration(site: Path, mock_harbor: MockHarbor) -> None:
    result = CliRunner().invoke(
        main,
        [
            "harbor",
            "ldap",
            "-C",
            str(site),
            "--url",
            mock_harbor.url,
            "--search-dn",
            "cn=harbor,ou=services,dc=lab,dc=example,dc=org",
            "--group-base-dn",
            "ou=groups,dc=lab,dc=example,dc=org",
            "--group-admin-dn",
            "cn=admins,ou=groups,dc=lab,dc=example,dc=org",
        ],
    )
    assert result.exit_code == 0, result.output
    put, ping = mock_harbor.requests
    assert (put.method, put.path) == ("PUT", "/api/v2.0/configurations")
    assert put.authorization == basic(
        secrets.read_secret(site, "harbor_admin_password")
    )
    assert put.body["auth_mode"] == "ldap_auth"
    assert put.body["ldap_url"] == "ldaps://ldap.lab.example.org:636"
    assert put.body["ldap_base_dn"] == "dc=lab,dc=example,dc=org"
    assert (
        put.body["ldap_search_dn"] == "cn=harbor,ou=services,dc=lab,dc=example,dc=org"
    )
    assert put.body["ldap_search_password"] == secrets.read_secret(
        site, "harbor_ldap_search_password"
    )
    assert put.body["ldap_uid"] == "uid"
    assert put.body["ldap_scope"] == 2
    assert put.body["ldap_verify_cert"] is True
    assert (
        put.body["ldap_group_admin_dn"]
        == "cn=admins,ou=groups,dc=lab,dc=example,dc=org"
    )
    assert (ping.method, ping.path) == ("POST", "/api/v2.0/ldap/ping")
    assert "auth_mode" not in ping.body
    assert ping.body["ldap_url"] == put.body["ldap_url"]


def test_ldap_command_reports_http_error(site: Path, mock_harbor: MockHarbor) -> None:
    mock_harbor.status["/api/v2.0/configurations"] = 403
    result = CliRunner().invoke(
        main,
        [
            "harbor",
            "ldap",
            "-C",
            str(site),
            "--url",
            mock_harbor.url,
            "--search-dn",
            "cn=x",
        ],
    )
    assert result.exit_code == 1
    assert "returned HTTP 403" in result.output
    assert len(mock_harbor.requests) == 1


def test_ldap_command_reports_failed_ping(site: Path, mock_harbor: MockHarbor) -> None:
    mock_harbor.ping_result = {"success": False, "message": "invalid credentials"}
    result = CliRunner().invoke(
        main,
        [
            "harbor",
            "ldap",
            "-C",
            str(site),
            "--url",
            mock_harbor.url,
            "--search-dn",
            "cn=x",
        ],
    )
    assert result.exit_code == 1
    assert "test bind failed: invalid credentials" in result.output


def test_rotate_harbor_admin_password(site: Path, mock_harbor: MockHarbor) -> None:
    old = secrets.read_secret(site, "harbor_admin_password")
    rotate.rotate(site, "harbor_admin_password", harbor_url=mock_harbor.url)
    new = secrets.read_secret(site, "harbor_admin_password")
    [request] = mock_harbor.requests
    assert (request.method, request.path) == ("PUT", "/api/v2.0/users/1/password")
    assert request.authorization == basic(old)
    assert request.body == {"old_password": old, "new_password": new}
    assert new != old


def test_rotate_keeps_password_when_harbor_rejects(
    site: Path, mock_harbor: MockHarbor
) -> None:
    mock_harbor.status["/api/v2.0/users/1/password"] = 400
    old = secrets.read_secret(site, "harbor_admin_password")
    with pytest.raises(rotate.RotationError, match="HTTP 400"):
        rotate.rotate(site, "harbor_admin_password", harbor_url=mock_harbor.url)
    assert secrets.read_secret(site, "harbor_admin_password") == old


def test_harbor_yml_rendered_for_traefik(site: Path) -> None:
    output = harbor.render_harbor_yml(site)
    assert output.stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load(output.read_text())
    assert config["hostname"] == "harbor.lab.test"
    assert config["external_url"] == "https://harbor.lab.test"
    assert "https" not in config
    assert config["http"]["port"] == 8080
    assert config["data_volume"] == "/data/harbor"
    assert config["harbor_admin_password"] == secrets.read_secret(
        site, "harbor_admin_password"
    )
    assert config["database"]["password"] == secrets.read_secret(
        site, "harbor_db_password"
    )


def test_harbor_compose_needs_prepare(site: Path) -> None:
    with pytest.raises(harbor.HarborError, match="run `labdock harbor prepare` first"):
        harbor.harbor_compose(site)
