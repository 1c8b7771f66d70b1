"""Harbor: its installer configuration, prepare step, project and REST API.

Harbor reads no secret files: its passwords go into harbor.yml, which its
prepare step turns into env files under installer/common/config. So the
rendered harbor.yml is written with mode 0600 and never tracked.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from labdock.stack import secrets, tree
from labdock.stack.compose import Compose, ComposeError

logger = logging.getLogger(__name__)

INSTALLER = "harbor/installer"
TEMPLATE = "harbor/harbor.yml.tmpl"
OVERRIDE = "harbor/compose.override.yaml"
PROJECT = "harbor"


class HarborError(Exception):
    """A Harbor step or API call failed."""


def render_harbor_yml(directory: Path) -> Path:
    """Render installer/harbor.yml from the template, .env and secret files."""
    settings = tree.env_values(directory)
    values = {
        **tree.template_values(settings),
        "HARBOR_DATA": settings.get("HARBOR_DATA") or "/data/harbor",
        "HARBOR_ADMIN_PASSWORD": secrets.read_secret(
            directory, "harbor_admin_password"
        ),
        "HARBOR_DB_PASSWORD": secrets.read_secret(directory, "harbor_db_password"),
    }
    text = tree.render_template(
        (directory / TEMPLATE).read_text(encoding="utf-8"), values, TEMPLATE
    )
    installer = directory / INSTALLER
    (installer / "common" / "config").mkdir(parents=True, exist_ok=True)
    output = installer / "harbor.yml"
    secrets.write_secret(output, text, 0, chown=False)
    return output


def prepare(directory: Path, environment: Mapping[str, str] | None = None) -> None:
    """Render harbor.yml and run Harbor's prepare step (the one-shot service)."""
    render_harbor_yml(directory)
    compose = Compose(
        directory,
        environment={**(environment or {}), "COMPOSE_PROFILES": "harbor-prepare"},
    )
    try:
        compose.run("run", "--rm", "harbor-prepare", capture=False)
    except ComposeError as error:
        raise HarborError(f"Harbor's prepare step failed: {error}") from error


def harbor_compose(
    directory: Path, environment: Mapping[str, str] | None = None
) -> Compose:
    """Return the Harbor project: prepare's docker-compose.yml plus the override."""
    generated = directory / INSTALLER / "docker-compose.yml"
    if not generated.is_file():
        raise HarborError(f"{generated} is missing; run `labdock harbor prepare` first")
    return Compose(
        generated,
        files=[directory / OVERRIDE],
        env_file=directory / ".env",
        project_name=PROJECT,
        environment=environment,
    )


# --- REST API ----------------------------------------------------------------


@dataclass(frozen=True)
class LdapSettings:
    """The LDAP keys of Harbor's configuration (PUT /api/v2.0/configurations)."""

    url: str
    base_dn: str
    search_dn: str
    search_password: str
    uid: str = "uid"
    filter: str = ""
    scope: int = 2
    timeout: int = 5
    verify_cert: bool = True
    group_base_dn: str = ""
    group_search_filter: str = ""
    group_attribute_name: str = "cn"
    group_admin_dn: str = ""
    group_membership_attribute: str = "memberof"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "auth_mode": "ldap_auth",
            "ldap_url": self.url,
            "ldap_base_dn": self.base_dn,
            "ldap_search_dn": self.search_dn,
            "ldap_search_password": self.search_password,
            "ldap_uid": self.uid,
            "ldap_filter": self.filter,
            "ldap_scope": self.scope,
            "ldap_timeout": self.timeout,
            "ldap_verify_cert": self.verify_cert,
            "ldap_group_membership_attribute": self.group_membership_attribute,
        }
        if self.group_base_dn:
            data.update(
                {
                    "ldap_group_base_dn": self.group_base_dn,
                    "ldap_group_search_filter": self.group_search_filter,
                    "ldap_group_attribute_name": self.group_attribute_name,
                    "ldap_group_admin_dn": self.group_admin_dn,
                    "ldap_group_search_scope": self.scope,
                }
            )
        return data


class HarborClient:
    """A small client of Harbor's v2.0 API with the admin's basic auth."""

    def __init__(
        self,
        base_url: str,
        password: str,
        *,
        username: str = "admin",
        ca_file: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.pool = urllib3.PoolManager(
            ca_certs=ca_file, timeout=urllib3.Timeout(total=timeout), retries=False
        )

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> Any:
        url = f"{self.base_url}/api/v2.0{path}"
        try:
            response = self.pool.request(
                method,
                url,
                body=json.dumps(body).encode() if body is not None else None,
                headers=self.headers,
            )
        except urllib3.exceptions.HTTPError as error:
            raise HarborError(f"{method} {url} failed: {error}") from error
        if response.status >= 400:
            detail = response.data.decode("utf-8", errors="replace")[:500]
            raise HarborError(
                f"{method} {url} returned HTTP {response.status}: {detail}"
            )
        if not response.data:
            return None
        try:
            return json.loads(response.data)
        except json.JSONDecodeError:
            return response.data.decode("utf-8", errors="replace")

    def configure_ldap(self, settings: LdapSettings, *, ping: bool = True) -> None:
        """Switch Harbor to LDAP authentication, then test the bind if `ping`.

        Harbor refuses a change of auth mode once users other than admin
        exist, so run this before anyone signs in.
        """
        self.request("PUT", "/configurations", settings.payload())
        logger.info("set Harbor's auth_mode to ldap_auth (%s)", settings.url)
        if ping:
            ping_body = {
                key: value
                for key, value in settings.payload().items()
                if key.startswith("ldap_") and not key.startswith("ldap_group")
            }
            result = self.request("POST", "/ldap/ping", ping_body)
            if isinstance(result, dict) and result.get("success") is False:
                raise HarborError(
                    f"Harbor's LDAP test bind failed: {result.get('message', result)}"
                )

    def change_admin_password(self, old: str, new: str) -> None:
        """Set a new password for the admin user (user id 1)."""
        self.request(
            "PUT", "/users/1/password", {"old_password": old, "new_password": new}
        )
