"""Policy rules of `labdock validate`: each fixture breaks exactly one rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from labdock.cli import main
from labdock.stack import policy
from labdock.stack.validate import (
    ALLOWLIST_RULE,
    COMPOSE_RULE,
    SITE_SETTINGS_RULE,
    validate,
)

FIXTURES = Path(__file__).parent / "fixtures" / "policy"
SERVICES = Path(__file__).resolve().parents[2] / "services"
RULE_IDS = sorted([COMPOSE_RULE.id, *policy.RULES])


def test_every_rule_has_a_fixture() -> None:
    fixtures = {path.stem for path in FIXTURES.glob("*.yaml")} - {"clean"}
    assert fixtures == set(RULE_IDS)


def test_clean_fixture_has_no_findings() -> None:
    assert validate(FIXTURES / "clean.yaml").findings == []


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_fixture_breaks_only_its_rule(rule_id: str) -> None:
    findings = validate(FIXTURES / f"{rule_id}.yaml").findings
    assert findings, f"{rule_id}.yaml produced no finding"
    assert {finding.rule for finding in findings} == {rule_id}


@pytest.mark.parametrize("rule_id", sorted(policy.RULES))
def test_finding_names_file_service_and_fix(rule_id: str) -> None:
    finding = validate(FIXTURES / f"{rule_id}.yaml").findings[0]
    assert finding.file.endswith(f"{rule_id}.yaml")
    assert finding.fix == policy.RULES[rule_id].fix
    if finding.service is not None:
        assert finding.service == "app"
        assert finding.line is not None


def test_shipped_tree_passes() -> None:
    result = validate(SERVICES)
    assert result.findings == []


def test_waiver_needs_a_reason(tmp_path: Path) -> None:
    text = (FIXTURES / "read-only-root.yaml").read_text()
    waived = text.replace(
        "    read_only: false\n",
        "    read_only: false\n"
        "    labels:\n"
        "      labdock.policy.waive: read-only-root\n",
    )
    (tmp_path / "compose.yaml").write_text(waived)
    assert [f.rule for f in validate(tmp_path).findings] == ["read-only-root"]

    with_reason = waived.replace(
        "      labdock.policy.waive: read-only-root\n",
        "      labdock.policy.waive: read-only-root\n"
        "      labdock.policy.waive.reason: the image writes to /var/cache\n",
    )
    (tmp_path / "compose.yaml").write_text(with_reason)
    assert validate(tmp_path).findings == []


def test_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(main, ["validate", str(FIXTURES / "clean.yaml")])
    assert clean.exit_code == 0, clean.output
    broken = runner.invoke(main, ["validate", str(FIXTURES / "image-pinned.yaml")])
    assert broken.exit_code == 1
    assert "[image-pinned]" in broken.output
    assert "fix:" in broken.output
    missing = tmp_path / "empty"
    missing.mkdir()
    error = runner.invoke(main, ["validate", str(missing)])
    assert error.exit_code == 2


def test_cli_tool_error_without_compose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABDOCK_COMPOSE", "/nonexistent/docker-compose")
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(main, ["validate", str(FIXTURES / "clean.yaml")])
    assert result.exit_code == 2
    assert "Compose v2 binary was not found" in result.output


def test_json_format() -> None:
    result = CliRunner().invoke(
        main, ["validate", "--format", "json", str(FIXTURES / "restart-policy.yaml")]
    )
    data = json.loads(result.output)
    assert [f["rule"] for f in data["findings"]] == ["restart-policy"]
    assert data["findings"][0]["service"] == "app"


def test_sarif_format() -> None:
    result = CliRunner().invoke(
        main, ["validate", "--format", "sarif", str(FIXTURES / "no-privileged.yaml")]
    )
    log = json.loads(result.output)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rule_ids = [item["id"] for item in run["tool"]["driver"]["rules"]]
    assert set(rule_ids) == {*RULE_IDS, ALLOWLIST_RULE.id, SITE_SETTINGS_RULE.id}
    [entry] = run["results"]
    assert entry["ruleId"] == "no-privileged"
    assert rule_ids[entry["ruleIndex"]] == "no-privileged"
    location = entry["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("no-privileged.yaml")
    assert location["region"]["startLine"] > 0


def _environment_tree(tmp_path: Path, key: str, value: str) -> Path:
    text = (FIXTURES / "clean.yaml").read_text()
    changed = text.replace(
        "      APP_PASSWORD_FILE: /run/secrets/app_password\n",
        f"      APP_PASSWORD_FILE: /run/secrets/app_password\n      {key}: '{value}'\n",
    )
    (tmp_path / "compose.yaml").write_text(changed)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "app_password").write_text("Vq3-correct-horse-battery\n")
    return tmp_path


def _environment_findings(tree: Path) -> list[str]:
    return [
        finding.message
        for finding in validate(tree).findings
        if finding.rule == "no-secret-in-environment"
    ]


def test_environment_secret_value_flagged(tmp_path: Path) -> None:
    tree = _environment_tree(tmp_path, "DB_URL_OPTIONS", "Vq3-correct-horse-battery")

    assert _environment_findings(tree) == [
        "environment variable DB_URL_OPTIONS holds the value of secret app_password"
    ]


@pytest.mark.parametrize(
    "value",
    [
        "postgres://app:s3cret-value@db:5432/app",
        "ghp_R4nd0mL00kingT0kenValue1234567",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
    ],
)
def test_credential_like_value_flagged(tmp_path: Path, value: str) -> None:
    tree = _environment_tree(tmp_path, "UPSTREAM", value)

    [message] = _environment_findings(tree)

    assert message.startswith("environment variable UPSTREAM holds a value that looks")


@pytest.mark.parametrize(
    "value",
    [
        "emqx@emqx.labdock.internal",
        "/var/lib/labdock/spool",
        "https://influxdb:8086",
        "LABDOCK_DATABASE_BUCKET_NAME_SENSORS",
        "lab",
    ],
)
def test_ordinary_value_not_flagged(tmp_path: Path, value: str) -> None:
    tree = _environment_tree(tmp_path, "SETTING", value)

    assert _environment_findings(tree) == []


@pytest.mark.parametrize(
    ("allowlist", "message"),
    [
        ("10.0.0.0/8,0.0.0.0/0", "ADMIN_ALLOWLIST contains 0.0.0.0/0, which opens"),
        ("::/0", "ADMIN_ALLOWLIST contains ::/0, which opens"),
        ("", "ADMIN_ALLOWLIST is empty in .env"),
        ("lab-net", "ADMIN_ALLOWLIST entry 'lab-net' is not an IP address"),
    ],
)
def test_admin_allowlist_findings(tmp_path: Path, allowlist: str, message: str) -> None:
    (tmp_path / "compose.yaml").write_text((FIXTURES / "clean.yaml").read_text())
    (tmp_path / ".env").write_text(f"ADMIN_ALLOWLIST={allowlist}\n")

    findings = validate(tmp_path).findings

    assert [finding.rule for finding in findings] == ["admin-allowlist"]
    assert findings[0].message.startswith(message)
    assert findings[0].file == str(tmp_path / ".env")


def test_admin_allowlist_valid_passes(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text((FIXTURES / "clean.yaml").read_text())
    (tmp_path / ".env").write_text("ADMIN_ALLOWLIST=192.168.10.0/24, 2001:db8::/32\n")

    assert validate(tmp_path).findings == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "LABDOCK_DOMAIN=lab.example..org",
            "LABDOCK_DOMAIN 'lab.example..org' is not a valid DNS name",
        ),
        (
            "LABDOCK_DOMAIN=lab_example.org",
            "LABDOCK_DOMAIN 'lab_example.org' is not a valid DNS name",
        ),
        (
            "INFLUXDB_BUKET=raw",
            "INFLUXDB_BUKET in .env is not used by any file of the tree; "
            "did you mean INFLUXDB_BUCKET?",
        ),
    ],
)
def test_site_settings_findings(tmp_path: Path, line: str, message: str) -> None:
    tree = _shipped_copy(tmp_path)
    env = (tree / ".env.example").read_text() + line + "\n"
    (tree / ".env").write_text(env)

    findings = validate(tree).findings

    assert [finding.rule for finding in findings] == ["site-settings"]
    assert findings[0].message.startswith(message)
    assert findings[0].file == str(tree / ".env")


def test_site_settings_overrides_pass(tmp_path: Path) -> None:
    tree = _shipped_copy(tmp_path)
    env = (tree / ".env.example").read_text()
    env += "TRAEFIK_IMAGE=registry.lab.test/traefik:v3\nCOMPOSE_PROFILES=harbor\n"
    (tree / ".env").write_text(env)

    assert validate(tree).findings == []


def _shipped_copy(tmp_path: Path) -> Path:
    target = tmp_path / "services"
    shutil.copytree(SERVICES, target)
    return target


def test_emqx_on_traefik_network_flagged(tmp_path: Path) -> None:
    target = _shipped_copy(tmp_path)
    emqx = target / "emqx" / "compose.yaml"
    emqx.write_text(
        emqx.read_text().replace(
            "      - backend\n", "      - backend\n      - traefik_network\n", 1
        )
    )

    findings = [
        (finding.rule, finding.service, finding.message)
        for finding in validate(target).findings
    ]

    assert findings == [
        (
            "internal-on-backend-only",
            "emqx",
            "is an internal service but joins traefik_network, which gives it a "
            "route out of the host",
        )
    ]


def test_traefik_network_label_checked_on_public(tmp_path: Path) -> None:
    target = _shipped_copy(tmp_path)
    lam = target / "lam" / "compose.yaml"
    lam.write_text(
        lam.read_text().replace(
            '      traefik.enable: "true"\n',
            '      traefik.enable: "true"\n'
            "      traefik.docker.network: labdock_backend\n",
            1,
        )
    )

    findings = [(f.rule, f.service) for f in validate(target).findings]

    assert findings == [("traefik-docker-network", "lam")]
