"""The services tree as shipped with labdock, laid down on a host.

`labdock init DIR` copies the shipped tree into DIR and records the SHA-256
of every file it wrote in DIR/.labdock-manifest.json. A later `init` (after
an upgrade of labdock) then tells a file the site changed from one it left
alone: unchanged files are updated, changed ones are kept and the new
version is written beside them as FILE.labdock-new.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labdock.stack.envfile import read_env, set_values

MANIFEST = ".labdock-manifest.json"
NEW_SUFFIX = ".labdock-new"
TEMPLATE_SUFFIX = ".tmpl"

# Templates rendered by `labdock harbor prepare` rather than by `render`,
# because they take secret values.
SECRET_TEMPLATES = frozenset({"harbor/harbor.yml.tmpl"})

# Paths under the tree that belong to the site, never to the shipped copy.
_SITE_PATTERNS = (
    re.compile(r"^\.env$"),
    re.compile(r"^secrets/(?!README\.md$)"),
    re.compile(r"^harbor/installer/"),
    re.compile(r"^sensor-acquisition/wheels/"),
    re.compile(r"(^|/)__pycache__/"),
    re.compile(re.escape(MANIFEST) + "$"),
    re.compile(re.escape(NEW_SUFFIX) + "$"),
)

# Values of template variables that .env may leave out.
TEMPLATE_DEFAULTS: dict[str, str] = {
    "ACME_CA_SERVER": "https://acme-v02.api.letsencrypt.org/directory",
    "ADMIN_ALLOWLIST": "10.0.0.0/8,192.168.0.0/16",
    "TRAEFIK_LOG_LEVEL": "INFO",
    "TRAEFIK_NETWORK": "traefik_network",
    "TRAEFIK_READ_TIMEOUT": "1h",
}


class TreeError(Exception):
    """The services tree is missing, incomplete or cannot be written."""


def shipped_tree() -> Path:
    """Locate the services tree that ships with this copy of labdock.

    Looks at $LABDOCK_SERVICES_DIR, then the package's own copy
    (labdock/stack/services, present in wheels), then a `services/`
    directory beside a source checkout's `src/`.
    """
    candidates: list[Path] = []
    override = os.environ.get("LABDOCK_SERVICES_DIR")
    if override:
        candidates.append(Path(override))
    package_dir = Path(__file__).resolve().parent
    candidates.append(package_dir / "services")
    candidates.extend(parent / "services" for parent in package_dir.parents)
    for candidate in candidates:
        if (candidate / "compose.yaml").is_file() and (
            candidate / ".env.example"
        ).is_file():
            return candidate
    raise TreeError(
        "the shipped services tree was not found; reinstall labdock or set "
        "LABDOCK_SERVICES_DIR to a checkout's services/ directory"
    )


def is_site_path(relative: str) -> bool:
    """Return whether a path belongs to the site rather than the shipped tree."""
    return any(pattern.search(relative) for pattern in _SITE_PATTERNS)


def iter_shipped_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (relative POSIX path, absolute path) of every shipped file."""
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if is_site_path(relative) or _is_rendered_output(root, relative):
            continue
        yield relative, path


def _is_rendered_output(root: Path, relative: str) -> bool:
    return (root / (relative + TEMPLATE_SUFFIX)).is_file()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class InitReport:
    """What `lay_down` did with each file, by relative path."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    env_created: bool = False


def _read_manifest(target: Path) -> dict[str, str]:
    path = target / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TreeError(
            f"{path} is not valid JSON ({error}); delete it to start over"
        ) from error
    files = data.get("files", {})
    return {str(key): str(value) for key, value in files.items()}


def _copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(source.read_bytes())
    destination.chmod(source.stat().st_mode & 0o777)


def lay_down(
    target: Path,
    *,
    domain: str,
    email: str,
    source: Path | None = None,
    force: bool = False,
) -> InitReport:
    """Copy the shipped tree into `target` and create .env from .env.example.

    A file the site changed since the last `init` is kept unless `force`;
    the shipped version is then written beside it as FILE.labdock-new.
    An existing .env is never touched.
    """
    source = source or shipped_tree()
    report = InitReport()
    target.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(target)
    new_manifest: dict[str, str] = {}

    for relative, path in iter_shipped_files(source):
        shipped_digest = file_digest(path)
        destination = target / relative
        new_manifest[relative] = shipped_digest
        if not destination.exists():
            _copy(path, destination)
            report.created.append(relative)
            continue
        current_digest = file_digest(destination)
        if current_digest == shipped_digest:
            report.unchanged.append(relative)
            continue
        if manifest.get(relative) == current_digest:
            _copy(path, destination)
            report.updated.append(relative)
            continue
        if force:
            _copy(path, destination)
            report.overwritten.append(relative)
            continue
        _copy(path, destination.with_name(destination.name + NEW_SUFFIX))
        report.kept.append(relative)
        # Keep the old digest so the file still counts as changed next time.
        new_manifest[relative] = manifest.get(relative, "")

    (target / "secrets").mkdir(mode=0o700, exist_ok=True)
    (target / "secrets").chmod(0o700)
    env_path = target / ".env"
    if not env_path.exists():
        example = (source / ".env.example").read_text(encoding="utf-8")
        text = set_values(example, {"LABDOCK_DOMAIN": domain, "ACME_EMAIL": email})
        env_path.write_text(text, encoding="utf-8")
        env_path.chmod(0o640)
        report.env_created = True

    (target / MANIFEST).write_text(
        json.dumps({"files": new_manifest}, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return report


def env_values(tree: Path) -> dict[str, str]:
    """Return the site settings: .env, or .env.example when .env is missing."""
    env_path = tree / ".env"
    if env_path.is_file():
        return read_env(env_path)
    return read_env(tree / ".env.example")


# One DNS label (RFC 1123): letters, digits and inner hyphens, 63 at most.
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def is_dns_name(name: str) -> bool:
    """Return whether `name` is a DNS name of two labels or more (lab.example.org)."""
    labels = name.split(".")
    return (
        len(name) <= 253
        and len(labels) >= 2
        and all(_DNS_LABEL.match(label) for label in labels)
    )


def admin_allowlist(settings: Mapping[str, str]) -> list[str]:
    """Return the ADMIN_ALLOWLIST ranges, each checked to be an IP or CIDR range.

    A missing key gives the default ranges. A key that is set but empty
    raises TreeError instead of falling back to them, because the user
    meant to change the list.
    """
    if "ADMIN_ALLOWLIST" not in settings:
        raw = TEMPLATE_DEFAULTS["ADMIN_ALLOWLIST"]
    else:
        raw = settings["ADMIN_ALLOWLIST"]
    ranges = [part.strip() for part in raw.split(",") if part.strip()]
    if not ranges:
        raise TreeError(
            "ADMIN_ALLOWLIST is empty in .env; set at least one IP or CIDR range, "
            "or remove the line to use the default "
            f"{TEMPLATE_DEFAULTS['ADMIN_ALLOWLIST']}"
        )
    for entry in ranges:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as error:
            raise TreeError(
                f"ADMIN_ALLOWLIST entry {entry!r} is not an IP address or CIDR range "
                "(e.g. 192.168.10.0/24); fix it in .env"
            ) from error
    return ranges


def open_ranges(ranges: Sequence[str]) -> list[str]:
    """Return the ranges that match every address (0.0.0.0/0, ::/0)."""
    return [
        entry
        for entry in ranges
        if ipaddress.ip_network(entry, strict=False).prefixlen == 0
    ]


def template_values(settings: Mapping[str, str]) -> dict[str, str]:
    """Return the variables templates may use: settings, defaults, derived."""
    values = {**TEMPLATE_DEFAULTS, **{k: v for k, v in settings.items() if v != ""}}
    values["ADMIN_ALLOWLIST_YAML"] = json.dumps(admin_allowlist(settings))
    return values


def render_template(text: str, values: Mapping[str, str], name: str) -> str:
    """Substitute ${NAME} placeholders, raising TreeError on a missing one."""
    try:
        return string.Template(text).substitute(values)
    except KeyError as error:
        raise TreeError(
            f"{name}: no value for ${{{error.args[0]}}}; set {error.args[0]} in .env"
        ) from error
    except ValueError as error:
        raise TreeError(f"{name}: invalid placeholder ({error})") from error


def render(tree: Path, settings: Mapping[str, str] | None = None) -> list[Path]:
    """Render every non-secret *.tmpl file of the tree; return the outputs."""
    values = template_values(settings if settings is not None else env_values(tree))
    outputs = []
    for template in sorted(tree.rglob("*" + TEMPLATE_SUFFIX)):
        relative = template.relative_to(tree).as_posix()
        if relative in SECRET_TEMPLATES or is_site_path(relative):
            continue
        text = render_template(template.read_text(encoding="utf-8"), values, relative)
        output = template.with_name(template.name[: -len(TEMPLATE_SUFFIX)])
        header = (
            f"# Rendered by labdock from {template.name}; edit that file instead.\n"
        )
        output.write_text(header + text, encoding="utf-8")
        outputs.append(output)
    return outputs
