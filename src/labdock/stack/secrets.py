"""The stack's secrets: one file each under secrets/, created, checked, rotated.

Compose mounts file secrets as bind mounts that keep the host file's owner
and mode, because uid, gid and mode in the Compose file apply only to
Swarm. So each file is mode 0600 and owned by the uid of the container user
that reads it. Files are rewritten in place, never replaced by a rename: a
running container's bind mount follows the inode, so a rotated value
reaches it only through the same inode.
"""

from __future__ import annotations

import os
import re
import secrets as random
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import bcrypt

SECRETS_DIR = "secrets"
MODE = 0o600
ACQUIRE_MQTT_USER = "labdock-acquire"
EMQX_API_KEY_NAME = "labdock"
DASHBOARD_USER = "admin"
DEFAULT_MAX_AGE_DAYS = 365
MIN_LENGTH = 16
# Values shorter than this are not searched for in other files, because
# they match by chance (a weak value is reported as weak instead).
LEAK_MIN_LENGTH = 12
# Larger files are not searched for leaked values: config and scripts are
# far smaller, and a dump or an image would only slow the check down.
MAX_SCAN_BYTES = 1024 * 1024

# The acquisition image's user; see services/sensor-acquisition/Dockerfile.
ACQUIRE_UID = 10001
# The emqx and influxdb images' users.
EMQX_UID = 1000
INFLUXDB_UID = 1000
# NOTE: www-data in the Debian-based LAM image; not checked against the image.
LAM_UID = 33


class SecretError(Exception):
    """A secret is missing, unreadable or cannot be written."""


@dataclass(frozen=True)
class SecretSpec:
    """One secret file: who reads it and how its value is made."""

    name: str
    description: str
    uid: int
    generate: Callable[[dict[str, str]], str]
    # Names of the secrets this one is computed from, created first.
    derived_from: tuple[str, ...] = ()
    # An empty file is valid until `labdock up` provisions the value.
    provisioned: bool = False


def password(_: dict[str, str]) -> str:
    """Return a random 32-character URL-safe password (192 bits)."""
    return random.token_urlsafe(24)


def token(_: dict[str, str]) -> str:
    """Return a random 64-character hex token (256 bits)."""
    return random.token_hex(32)


def _dashboard_users(values: dict[str, str]) -> str:
    hashed = bcrypt.hashpw(
        values["traefik_dashboard_password"].encode(), bcrypt.gensalt()
    )
    return f"{DASHBOARD_USER}:{hashed.decode()}\n"


def _mqtt_users(values: dict[str, str]) -> str:
    # EMQX bootstrap_file, bootstrap_type plain: a CSV with a header line.
    return (
        "user_id,password,is_superuser\n"
        f"{ACQUIRE_MQTT_USER},{values['mqtt_acquire_password']},false\n"
    )


def _api_keys(_: dict[str, str]) -> str:
    # EMQX api_key.bootstrap_file: key:secret:role per line.
    return f"{EMQX_API_KEY_NAME}:{random.token_urlsafe(24)}:administrator\n"


def _empty(_: dict[str, str]) -> str:
    return ""


SPECS: tuple[SecretSpec, ...] = (
    SecretSpec(
        "traefik_dashboard_password",
        "password of the Traefik dashboard user admin "
        "(kept for the operator, not mounted)",
        0,
        password,
    ),
    SecretSpec(
        "traefik_dashboard_users",
        "bcrypt users file of the dashboard's basicAuth middleware",
        0,
        _dashboard_users,
        derived_from=("traefik_dashboard_password",),
    ),
    SecretSpec(
        "emqx_dashboard_password",
        "EMQX dashboard password of admin",
        EMQX_UID,
        password,
    ),
    SecretSpec("emqx_api_keys", "EMQX REST API key for labdock", EMQX_UID, _api_keys),
    SecretSpec(
        "mqtt_acquire_password",
        "MQTT password of the acquisition service",
        ACQUIRE_UID,
        password,
    ),
    SecretSpec(
        "emqx_mqtt_users",
        "MQTT users seeded into EMQX's built-in database",
        EMQX_UID,
        _mqtt_users,
        derived_from=("mqtt_acquire_password",),
    ),
    SecretSpec(
        "influxdb_admin_password", "InfluxDB admin password", INFLUXDB_UID, password
    ),
    SecretSpec("influxdb_admin_token", "InfluxDB operator token", INFLUXDB_UID, token),
    SecretSpec(
        "influxdb_write_token",
        "InfluxDB write token of the acquisition service (created by labdock up)",
        ACQUIRE_UID,
        _empty,
        provisioned=True,
    ),
    SecretSpec("lam_password", "LAM master configuration password", LAM_UID, password),
    SecretSpec("harbor_admin_password", "Harbor admin password", 0, password),
    SecretSpec("harbor_db_password", "Harbor database password", 0, password),
    SecretSpec(
        "harbor_ldap_search_password",
        "password of the LDAP search DN that Harbor binds with "
        "(replace it with the real one)",
        0,
        password,
    ),
)

SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


def secrets_dir(tree: Path) -> Path:
    return tree / SECRETS_DIR


def read_secret(tree: Path, name: str) -> str:
    """Return a secret's value without its trailing newline."""
    path = secrets_dir(tree) / name
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError as error:
        raise SecretError(
            f"secret {path} is missing; run `labdock secrets init`"
        ) from error


def write_secret(path: Path, value: str, uid: int, *, chown: bool = True) -> None:
    """Write a secret in place with mode 0600 and the given owner.

    Created with mode 0600 before any byte is written, and rewritten in
    place when it exists (see the module docstring).
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, MODE)
    try:
        os.fchmod(descriptor, MODE)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, value.encode("utf-8"))
        os.fsync(descriptor)
        if chown and os.geteuid() == 0:
            os.fchown(descriptor, uid, uid)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class InitOutcome:
    created: list[str]
    existing: list[str]


def init_secrets(tree: Path, *, chown: bool = True) -> InitOutcome:
    """Create every missing secret file; existing files are left alone."""
    directory = secrets_dir(tree)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    values: dict[str, str] = {}
    created, existing = [], []
    for spec in SPECS:
        path = directory / spec.name
        if path.exists():
            values[spec.name] = read_secret(tree, spec.name)
            existing.append(spec.name)
            continue
        value = spec.generate(values)
        write_secret(path, value, spec.uid, chown=chown)
        values[spec.name] = value.rstrip("\n")
        created.append(spec.name)
    return InitOutcome(created, existing)


# --- check ------------------------------------------------------------------

_WEAK_VALUES = frozenset(
    {
        "admin",
        "changeme",
        "password",
        "public",
        "secret",
        "letmein",
        "123456",
        "harbor12345",
    }
)
_SECRET_KEY = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|COOKIE)", re.I)


@dataclass(frozen=True)
class Problem:
    """One issue found by `check_secrets`."""

    secret: str
    message: str
    level: str = "error"


def _secret_values(spec: SecretSpec, text: str) -> list[str]:
    """Return the sensitive values a secret file holds."""
    if spec.name == "emqx_mqtt_users":
        rows = [line.split(",") for line in text.splitlines()[1:] if line]
        return [row[1] for row in rows if len(row) > 1]
    if spec.name == "emqx_api_keys":
        return [
            line.split(":")[1] for line in text.splitlines() if line.count(":") >= 2
        ]
    if spec.name == "traefik_dashboard_users":
        return []
    return [text.rstrip("\n")] if text.strip() else []


def _is_weak(value: str) -> bool:
    if value.lower() in _WEAK_VALUES or len(value) < MIN_LENGTH:
        return True
    return len(set(value)) < 8


def check_secrets(
    tree: Path,
    *,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    check_owner: bool = True,
    git_history: bool = True,
) -> list[Problem]:
    """Check presence, mode, owner, age, strength and leaks of every secret."""
    problems: list[Problem] = []
    directory = secrets_dir(tree)
    if directory.exists() and directory.stat().st_mode & 0o077:
        problems.append(
            Problem("secrets/", f"{directory} is readable by others; chmod 700 it")
        )
    values: dict[str, list[str]] = {}
    now = time.time()
    for spec in SPECS:
        path = directory / spec.name
        if not path.is_file():
            problems.append(
                Problem(spec.name, f"{path} is missing; run `labdock secrets init`")
            )
            continue
        info = path.stat()
        if info.st_mode & 0o077:
            problems.append(
                Problem(
                    spec.name,
                    f"mode is {info.st_mode & 0o777:04o}; run chmod 600 {path}",
                )
            )
        if check_owner and os.geteuid() == 0 and info.st_uid != spec.uid:
            problems.append(
                Problem(
                    spec.name,
                    f"owned by uid {info.st_uid}, but its container reads it as uid "
                    f"{spec.uid}; run chown {spec.uid}:{spec.uid} {path}",
                )
            )
        age_days = (now - info.st_mtime) / 86400
        if age_days > max_age_days:
            problems.append(
                Problem(
                    spec.name,
                    f"last changed {age_days:.0f} days ago "
                    f"(limit {max_age_days}); rotate it",
                    level="warning",
                )
            )
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            if not spec.provisioned:
                problems.append(
                    Problem(
                        spec.name, "is empty; delete it and run `labdock secrets init`"
                    )
                )
            continue
        found = _secret_values(spec, text)
        values[spec.name] = found
        for value in found:
            if _is_weak(value):
                problems.append(
                    Problem(
                        spec.name,
                        f"is weak (shorter than {MIN_LENGTH} or a common value)",
                    )
                )
    problems.extend(_extra_secret_problems(tree, values))
    problems.extend(_leaks(tree, values, git_history=git_history))
    return problems


def _extra_secret_problems(tree: Path, values: dict[str, list[str]]) -> list[Problem]:
    """Check the files under secrets/ that no service spec names.

    `labdock backup init` writes secrets/restic_password there, and it needs
    the same protection. Their values are added to `values` for the leak
    search.
    """
    directory = secrets_dir(tree)
    if not directory.is_dir():
        return []
    known = {spec.name for spec in SPECS} | {"README.md"}
    problems = []
    for path in sorted(directory.iterdir()):
        if path.name in known or not path.is_file() or path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            problems.append(
                Problem(path.name, f"mode is {mode:04o}; run chmod 600 {path}")
            )
        value = path.read_text(encoding="utf-8", errors="replace").strip()
        if not value:
            continue
        values[path.name] = [value]
        if _is_weak(value):
            problems.append(
                Problem(
                    path.name, f"is weak (shorter than {MIN_LENGTH} or a common value)"
                )
            )
    return problems


def _is_text(path: Path) -> bool:
    """Return whether `path` is a file small enough to scan and without NUL bytes."""
    try:
        if path.stat().st_size > MAX_SCAN_BYTES:
            return False
        with path.open("rb") as handle:
            return b"\0" not in handle.read(8192)
    except OSError:
        return False


def _scanned_files(tree: Path) -> Iterable[Path]:
    """Yield every text file of the tree outside secrets/ and .git/."""
    for path in sorted(tree.rglob("*")):
        relative = path.relative_to(tree)
        if relative.parts[0] in (SECRETS_DIR, ".git"):
            continue
        if path.is_file() and not path.is_symlink() and _is_text(path):
            yield path


def _searched_values(values: dict[str, list[str]]) -> dict[str, str]:
    """Return the values worth searching for, each with its secret's name.

    Weak and short values are left out: a weak one is reported as weak
    already, and a common word would match in many files.
    """
    return {
        value: name
        for name, found in values.items()
        for value in found
        if len(value) >= LEAK_MIN_LENGTH and not _is_weak(value)
    }


def _leaks(
    tree: Path, values: dict[str, list[str]], *, git_history: bool
) -> list[Problem]:
    problems: list[Problem] = []
    # Rendered Harbor input legitimately contains Harbor's passwords.
    allowed = {tree / "harbor" / "installer" / "harbor.yml"}
    needles = _searched_values(values)
    for path in _scanned_files(tree):
        if path in allowed:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        leaked = sorted({name for value, name in needles.items() if value in text})
        for name in leaked:
            problems.append(
                Problem(name, f"its value appears in {path}; remove it and rotate")
            )
        if path.name.startswith(".env"):
            for line_number, line in enumerate(text.splitlines(), 1):
                key, _, value = line.partition("=")
                if (
                    _SECRET_KEY.search(key)
                    and value.strip()
                    and not line.lstrip().startswith("#")
                ):
                    problems.append(
                        Problem(
                            key.strip(),
                            f"{path}:{line_number} sets a credential-like variable; "
                            "move the value to a file under secrets/",
                        )
                    )
    if git_history:
        problems.extend(_git_leaks(tree, values))
    return problems


def _in_git_repository(tree: Path) -> bool:
    return any((directory / ".git").exists() for directory in [tree, *tree.parents])


def _git_leaks(tree: Path, values: dict[str, list[str]]) -> list[Problem]:
    """Search every commit reachable in the tree's git repository, if any.

    A failed search (git missing, "dubious ownership", a broken repository)
    is a warning, because leaks in the history would go unnoticed.
    """
    needles = _searched_values(values)
    if not needles or not _in_git_repository(tree):
        return []
    fix = (
        "fix the repository (for dubious ownership: `git config --global --add "
        f"safe.directory {tree}`) or pass --no-git"
    )
    try:
        completed = subprocess.run(
            [
                "git",
                "-C",
                str(tree),
                "log",
                "--all",
                "-p",
                "--no-color",
                "--no-ext-diff",
            ],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return [
            Problem(
                "git",
                f"could not search git history: {error}; {fix}",
                level="warning",
            )
        ]
    if completed.returncode != 0:
        reason = completed.stderr.strip().splitlines()
        detail = reason[0] if reason else f"git exited with {completed.returncode}"
        return [
            Problem(
                "git",
                f"could not search git history: {detail}; {fix}",
                level="warning",
            )
        ]
    history = completed.stdout
    leaked = sorted({name for value, name in needles.items() if value in history})
    return [
        Problem(name, "its value appears in the git history; rotate it")
        for name in leaked
    ]


# --- rotation ---------------------------------------------------------------

# Secrets whose rotation labdock carries out, with what it does. The others
# print the manual steps in ROTATION_STEPS.
ROTATION_SUPPORTED = {
    "traefik_dashboard_password": (
        "new password, new bcrypt users file, restart traefik"
    ),
    "traefik_dashboard_users": "same as traefik_dashboard_password",
    "emqx_dashboard_password": (
        "new password, set with `emqx ctl admins passwd` in the container"
    ),
    "harbor_admin_password": (
        "new password, set through Harbor's API (PUT /api/v2.0/users/1/password)"
    ),
}

ROTATION_STEPS = {
    "mqtt_acquire_password": (
        "Change the user's password in EMQX (dashboard: Access Control > "
        "Authentication > built-in database), write it to "
        "secrets/mqtt_acquire_password and secrets/emqx_mqtt_users, then "
        "`labdock up` to restart sensor-acquisition."
    ),
    "emqx_mqtt_users": "Rotate mqtt_acquire_password; this file follows it.",
    "emqx_api_keys": (
        "Delete the key in the EMQX dashboard (System > API Keys), write a "
        "new key:secret:administrator line, restart emqx."
    ),
    "influxdb_admin_password": (
        "Run `influx user password --name admin` in the influxdb container, "
        "then write the new value to secrets/influxdb_admin_password."
    ),
    "influxdb_admin_token": (
        "The operator token cannot be replaced in place: create a new "
        "operator token (`influx auth create --operator`), store it here, "
        "delete the old one, and take a new backup."
    ),
    "influxdb_write_token": (
        "Empty secrets/influxdb_write_token and run `labdock up`; it creates "
        "a new write token. Then delete the old token in InfluxDB."
    ),
    "lam_password": (
        "Change the master password in LAM's configuration, then store it here."
    ),
    "harbor_db_password": (
        "Change the password of the postgres user in harbor-db, store it "
        "here, then `labdock harbor prepare` and `labdock harbor up`."
    ),
    "harbor_ldap_search_password": (
        "Change the password of the search DN in LDAP, store it here, then "
        "`labdock harbor ldap`."
    ),
}
