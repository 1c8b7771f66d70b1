"""`labdock validate`: Compose's own check first, then the policy rules."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labdock import __version__
from labdock.stack import policy
from labdock.stack import tree as stack_tree
from labdock.stack.compose import Compose, ComposeError, compose_file
from labdock.stack.envfile import read_env

COMPOSE_RULE = policy.Rule(
    id="compose-config",
    summary="Docker Compose accepts the project (`docker compose config`).",
    fix="Fix the error Compose reports; it names the file and key.",
    check=lambda project: iter(()),
)


ALLOWLIST_RULE = policy.Rule(
    id="admin-allowlist",
    summary="ADMIN_ALLOWLIST in .env lists valid IP or CIDR ranges, none open "
    "to every address.",
    fix="Set ADMIN_ALLOWLIST in .env to the networks the admins work from, "
    "e.g. 192.168.10.0/24, never 0.0.0.0/0 or ::/0.",
    check=lambda project: iter(()),
)


SITE_SETTINGS_RULE = policy.Rule(
    id="site-settings",
    summary="LABDOCK_DOMAIN in .env is a valid DNS name, and every variable "
    "of .env is one that the tree uses.",
    fix="Correct the name or value in .env; .env.example lists every "
    "variable with its meaning.",
    check=lambda project: iter(()),
)

# The rules that validate() checks besides the policy rules of the Compose model.
TREE_RULES = (COMPOSE_RULE, ALLOWLIST_RULE, SITE_SETTINGS_RULE)

_VARIABLE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
# Settings of Compose and the Docker client themselves, which no file of
# the tree names.
_COMPOSE_PREFIXES = ("COMPOSE_", "DOCKER_")


class ValidationToolError(Exception):
    """The validator could not run (as opposed to finding problems)."""


@dataclass
class ValidationResult:
    """Findings of one run, and the file that was checked."""

    target: str
    findings: list[policy.Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings


def validate(path: Path) -> ValidationResult:
    """Validate a services tree (directory) or one Compose file.

    With no .env beside the Compose file, .env.example supplies the site
    settings, so the shipped tree can be checked before `labdock init`.
    Raises ValidationToolError when the Compose binary cannot be run.
    """
    file = compose_file(path).resolve()
    if not file.is_file():
        raise ValidationToolError(
            f"{file} not found; pass a services tree or a Compose file"
        )
    env_file = None
    if (
        not (file.parent / ".env").is_file()
        and (file.parent / ".env.example").is_file()
    ):
        env_file = file.parent / ".env.example"
    try:
        compose = Compose(
            file, env_file=env_file, environment={"COMPOSE_PROFILES": "*"}
        )
    except ComposeError as error:
        raise ValidationToolError(str(error)) from error
    result = ValidationResult(target=str(file))
    try:
        model = compose.config()
    except ComposeError as error:
        cause = error.__cause__
        if cause is not None and getattr(cause, "result", None) is None:
            raise ValidationToolError(str(error)) from error
        result.findings.append(
            policy.Finding(
                rule=COMPOSE_RULE.id,
                message=_compose_message(str(error)),
                fix=COMPOSE_RULE.fix,
                file=str(file),
            )
        )
        return result
    result.findings.extend(policy.evaluate(policy.Project(model, file)))
    result.findings.extend(allowlist_findings(file.parent, env_file))
    result.findings.extend(site_settings_findings(file.parent, env_file))
    return result


def site_settings_findings(tree: Path, env_file: Path | None) -> list[policy.Finding]:
    """Return the findings on LABDOCK_DOMAIN and the variable names of the tree's .env.

    Compose substitutes a default for a variable that is missing, so a
    misspelt name in .env is otherwise ignored without a message. Names are
    checked only in a tree with .env.example, against its variables and the
    ${NAME} references of the Compose files and templates.
    """
    path = env_file or tree / ".env"
    if not path.is_file():
        return []
    settings = read_env(path)
    findings = []

    def finding(message: str) -> policy.Finding:
        return policy.Finding(
            rule=SITE_SETTINGS_RULE.id,
            message=message,
            fix=SITE_SETTINGS_RULE.fix,
            file=str(path),
        )

    domain = settings.get("LABDOCK_DOMAIN", "")
    if domain and not stack_tree.is_dns_name(domain):
        findings.append(
            finding(
                f"LABDOCK_DOMAIN {domain!r} is not a valid DNS name "
                "(dot-separated labels of letters, digits and hyphens, "
                "e.g. lab.example.org)"
            )
        )
    example = tree / ".env.example"
    if not example.is_file():
        # Not a labdock tree, so there is no list of the expected variables.
        return findings
    known = set(read_env(example)) | _referenced_variables(tree)
    for name in sorted(settings):
        if name in known or name.startswith(_COMPOSE_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        findings.append(
            finding(f"{name} in .env is not used by any file of the tree{hint}")
        )
    return findings


def _referenced_variables(tree: Path) -> set[str]:
    """Return the ${NAME} variables that the Compose files and templates use."""
    names: set[str] = set()
    for pattern in ("**/*.yaml", "**/*.yml", "**/*.tmpl"):
        for file in tree.glob(pattern):
            if "secrets" in file.relative_to(tree).parts:
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            names.update(_VARIABLE_REFERENCE.findall(text))
    return names


def allowlist_findings(tree: Path, env_file: Path | None) -> list[policy.Finding]:
    """Check ADMIN_ALLOWLIST of the tree's .env (or of `env_file`).

    The list is not part of the Compose model: Traefik's middleware file is
    rendered from it, so this check reads the env file itself.
    """
    path = env_file or tree / ".env"
    if not path.is_file():
        return []
    settings = read_env(path)

    def finding(message: str) -> policy.Finding:
        return policy.Finding(
            rule=ALLOWLIST_RULE.id,
            message=message,
            fix=ALLOWLIST_RULE.fix,
            file=str(path),
        )

    try:
        ranges = stack_tree.admin_allowlist(settings)
    except stack_tree.TreeError as error:
        return [finding(str(error))]
    return [
        finding(
            f"ADMIN_ALLOWLIST contains {entry}, which opens the admin UIs "
            "(Traefik, EMQX, InfluxDB, LAM, Harbor) to every address"
        )
        for entry in stack_tree.open_ranges(ranges)
    ]


def _compose_message(text: str) -> str:
    # Keep Compose's own error, not the command line that produced it.
    match = re.search(r"failed with exit code \d+: (.*)", text, re.S)
    return (match.group(1) if match else text).strip()


def format_text(result: ValidationResult) -> str:
    if result.clean:
        count = len(policy.RULES) + len(TREE_RULES)
        return f"{result.target}: no findings ({count} rules checked)\n"
    lines = []
    for finding in result.findings:
        where = finding.file + (f":{finding.line}" if finding.line else "")
        service = f" service {finding.service}:" if finding.service else ""
        lines.append(f"{where}:{service} [{finding.rule}] {finding.message}")
        lines.append(f"    fix: {finding.fix}")
    lines.append(f"{len(result.findings)} finding(s)")
    return "\n".join(lines) + "\n"


def format_json(result: ValidationResult) -> str:
    data = {
        "target": result.target,
        "findings": [asdict(finding) for finding in result.findings],
    }
    return json.dumps(data, indent=2) + "\n"


def format_sarif(result: ValidationResult) -> str:
    """Return the findings as a SARIF 2.1.0 log."""
    rules = [*TREE_RULES, *policy.RULES.values()]
    index = {item.id: position for position, item in enumerate(rules)}
    results: list[dict[str, Any]] = []
    for finding in result.findings:
        location: dict[str, Any] = {
            "artifactLocation": {"uri": Path(finding.file).as_uri()}
        }
        if finding.line:
            location["region"] = {"startLine": finding.line}
        prefix = f"service {finding.service}: " if finding.service else ""
        results.append(
            {
                "ruleId": finding.rule,
                "ruleIndex": index[finding.rule],
                "level": finding.level,
                "message": {"text": f"{prefix}{finding.message}. Fix: {finding.fix}"},
                "locations": [{"physicalLocation": location}],
            }
        )
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "labdock validate",
                        "version": __version__,
                        "rules": [
                            {
                                "id": item.id,
                                "shortDescription": {"text": item.summary},
                                "help": {"text": item.fix},
                            }
                            for item in rules
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


FORMATTERS = {"text": format_text, "json": format_json, "sarif": format_sarif}
