"""`labdock secrets rotate NAME`: the rotations labdock carries out itself."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from labdock.stack import secrets
from labdock.stack.compose import Compose, ComposeError
from labdock.stack.harbor import HarborClient, HarborError
from labdock.stack.lifecycle import SET_EMQX_DASHBOARD_PASSWORD

logger = logging.getLogger(__name__)


class RotationError(Exception):
    """A rotation is not implemented or one of its steps failed."""


def _running(compose: Compose, service: str) -> bool:
    try:
        rows = compose.ps()
    except ComposeError:
        return False
    return any(
        row.get("Service") == service and row.get("State") == "running" for row in rows
    )


def _read_files(directory: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Return the current text of each secret file that exists."""
    return {
        name: (directory / name).read_text(encoding="utf-8")
        for name in names
        if (directory / name).is_file()
    }


def _put_back(directory: Path, old_values: Mapping[str, str]) -> None:
    for name, text in old_values.items():
        spec = secrets.SPECS_BY_NAME[name]
        secrets.write_secret(directory / name, text, spec.uid)
        logger.warning("rotation failed; put the old value of %s back", name)


def rotate(
    directory: Path,
    name: str,
    *,
    harbor_url: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> str:
    """Rotate one secret and return a sentence saying what was done.

    Raises RotationError with the manual steps for a secret whose rotation
    labdock does not carry out.
    """
    if name not in secrets.SPECS_BY_NAME:
        known = ", ".join(spec.name for spec in secrets.SPECS)
        raise RotationError(f"unknown secret {name!r}; known secrets: {known}")
    if name not in secrets.ROTATION_SUPPORTED:
        raise RotationError(
            f"rotation of {name} is not implemented by labdock. Manual steps: "
            + secrets.ROTATION_STEPS[name]
        )
    directory_secrets = secrets.secrets_dir(directory)
    new_value = secrets.password({})

    if name in ("traefik_dashboard_password", "traefik_dashboard_users"):
        users = secrets.SPECS_BY_NAME["traefik_dashboard_users"]
        names = ("traefik_dashboard_password", users.name)
        old_values = _read_files(directory_secrets, names)
        secrets.write_secret(
            directory_secrets / "traefik_dashboard_password", new_value, 0
        )
        users_text = users.generate({"traefik_dashboard_password": new_value})
        secrets.write_secret(directory_secrets / users.name, users_text, users.uid)
        compose = Compose(directory, environment=environment)
        # Traefik reads a basicAuth users file when it builds the middleware,
        # not when the file changes.
        if _running(compose, "traefik"):
            try:
                compose.run("restart", "traefik")
            except ComposeError as error:
                _put_back(directory_secrets, old_values)
                raise RotationError(
                    f"restarting traefik failed, so the old dashboard password "
                    f"was put back in {directory_secrets}: {error}; see "
                    "`labdock logs traefik`, then run the rotation again"
                ) from error
            return "rotated the Traefik dashboard password and restarted traefik"
        return "rotated the Traefik dashboard password (traefik is not running)"

    if name == "emqx_dashboard_password":
        spec = secrets.SPECS_BY_NAME[name]
        old_values = _read_files(directory_secrets, (name,))
        secrets.write_secret(directory_secrets / name, new_value, spec.uid)
        compose = Compose(directory, environment=environment)
        if not _running(compose, "emqx"):
            return "stored a new EMQX dashboard password; `labdock up` sets it in EMQX"
        try:
            compose.run("exec", "-T", "emqx", "sh", "-c", SET_EMQX_DASHBOARD_PASSWORD)
        except ComposeError as error:
            # EMQX still has the old password, so the file must match it.
            _put_back(directory_secrets, old_values)
            raise RotationError(
                "`emqx ctl admins passwd` failed in the emqx container, so the old "
                f"password was put back in {directory_secrets / name}: {error}; "
                "check `labdock logs emqx`, then run the rotation again"
            ) from error
        return "rotated the EMQX dashboard password of admin"

    # harbor_admin_password: change it in Harbor first, so a failed call
    # leaves the stored password matching Harbor's.
    if not harbor_url:
        raise RotationError("rotating harbor_admin_password needs --harbor-url")
    old_value = secrets.read_secret(directory, name)
    try:
        HarborClient(harbor_url, old_value).change_admin_password(old_value, new_value)
    except HarborError as error:
        raise RotationError(f"Harbor rejected the new password: {error}") from error
    secrets.write_secret(directory_secrets / name, new_value, 0)
    return "rotated Harbor's admin password"
