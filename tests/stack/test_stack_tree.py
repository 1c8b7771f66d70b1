"""`labdock init` and template rendering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from labdock.cli import main
from labdock.stack import tree
from labdock.stack.envfile import read_env

SERVICES = Path(__file__).resolve().parents[2] / "services"


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A private copy of the shipped tree, so a test can change it."""
    copy = tmp_path / "shipped"
    shutil.copytree(SERVICES, copy, ignore=shutil.ignore_patterns(".env", "installer"))
    return copy


def lay_down(source: Path, target: Path, force: bool = False) -> tree.InitReport:
    return tree.lay_down(
        target, domain="lab.test", email="ops@lab.test", source=source, force=force
    )


def test_shipped_tree_is_found() -> None:
    assert tree.shipped_tree().resolve() == SERVICES.resolve()


def test_init_creates_tree_and_env(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    report = lay_down(source, target)

    assert "compose.yaml" in report.created
    assert "traefik/traefik.yml.tmpl" in report.created
    assert report.env_created
    env = read_env(target / ".env")
    assert env["LABDOCK_DOMAIN"] == "lab.test"
    assert env["ACME_EMAIL"] == "ops@lab.test"
    assert (target / "secrets").stat().st_mode & 0o777 == 0o700
    manifest = json.loads((target / tree.MANIFEST).read_text())
    assert manifest["files"]["compose.yaml"] == tree.file_digest(
        source / "compose.yaml"
    )


def test_init_skips_site_files(source: Path, tmp_path: Path) -> None:
    (source / "secrets" / "leaked").write_text("value")
    (source / ".env").write_text("LABDOCK_DOMAIN=other\n")
    target = tmp_path / "site"
    lay_down(source, target)
    assert not (target / "secrets" / "leaked").exists()
    assert read_env(target / ".env")["LABDOCK_DOMAIN"] == "lab.test"


def test_second_init_changes_nothing(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    lay_down(source, target)
    (target / ".env").write_text("LABDOCK_DOMAIN=kept.test\n")
    report = lay_down(source, target)
    assert report.created == []
    assert report.updated == []
    assert report.kept == []
    assert not report.env_created
    assert read_env(target / ".env")["LABDOCK_DOMAIN"] == "kept.test"


def test_upgrade_updates_untouched_file(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    lay_down(source, target)
    (source / "emqx" / "etc" / "acl.conf").write_text("%% new shipped version\n")
    report = lay_down(source, target)
    assert report.updated == ["emqx/etc/acl.conf"]
    assert (target / "emqx/etc/acl.conf").read_text() == "%% new shipped version\n"


def test_upgrade_keeps_changed_file(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    lay_down(source, target)
    local = target / "emqx" / "etc" / "acl.conf"
    local.write_text("%% site rules\n")
    (source / "emqx" / "etc" / "acl.conf").write_text("%% new shipped version\n")

    report = lay_down(source, target)
    assert report.kept == ["emqx/etc/acl.conf"]
    assert local.read_text() == "%% site rules\n"
    new = local.with_name("acl.conf" + tree.NEW_SUFFIX)
    assert new.read_text() == "%% new shipped version\n"

    # Still counted as changed by the site on the next run.
    again = lay_down(source, target)
    assert again.kept == ["emqx/etc/acl.conf"]


def test_force_overwrites_changed_file(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    lay_down(source, target)
    local = target / "emqx" / "etc" / "acl.conf"
    local.write_text("%% site rules\n")
    report = lay_down(source, target, force=True)
    assert report.overwritten == ["emqx/etc/acl.conf"]
    assert local.read_bytes() == (source / "emqx/etc/acl.conf").read_bytes()


def test_init_cli_says_it_kept_a_file(tmp_path: Path) -> None:
    target = tmp_path / "site"
    args = ["init", str(target), "--domain", "lab.test", "--email", "ops@lab.test"]
    runner = CliRunner()
    assert runner.invoke(main, args).exit_code == 0
    (target / "compose.yaml").write_text("# changed\n")
    (target / tree.MANIFEST).write_text('{"files": {}}')
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "kept your changes to compose.yaml" in result.output


def test_init_cli_rejects_bad_domain(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["init", str(tmp_path / "s"), "--domain", "nodots", "--email", "a@b.c"]
    )
    assert result.exit_code == 2
    assert "not a domain name" in result.output


@pytest.mark.parametrize(
    "domain", ["lab..example.org", "https://lab.example.org/", "lab_example.org"]
)
def test_init_cli_rejects_malformed_domain(tmp_path: Path, domain: str) -> None:
    target = tmp_path / "s"
    result = CliRunner().invoke(
        main, ["init", str(target), "--domain", domain, "--email", "a@b.c"]
    )
    assert result.exit_code == 2
    assert "not a domain name" in result.output
    assert not target.exists()


def test_init_cli_prompts_for_domain(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["init", str(tmp_path / "s")], input="lab.test\nops@lab.test\n"
    )
    assert result.exit_code == 0, result.output
    assert read_env(tmp_path / "s" / ".env")["LABDOCK_DOMAIN"] == "lab.test"


def test_render_fills_templates(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    lay_down(source, target)
    outputs = tree.render(target)
    names = sorted(path.relative_to(target).as_posix() for path in outputs)
    assert names == ["traefik/dynamic/middlewares.yml", "traefik/traefik.yml"]
    static = (target / "traefik" / "traefik.yml").read_text()
    assert 'email: "ops@lab.test"' in static
    assert "readTimeout: 1h" in static
    middlewares = (target / "traefik" / "dynamic" / "middlewares.yml").read_text()
    assert 'sourceRange: ["10.0.0.0/8", "192.168.0.0/16"]' in middlewares
    assert not (target / "harbor" / "harbor.yml").exists()


def test_render_reports_missing_value(tmp_path: Path) -> None:
    (tmp_path / "x.yml.tmpl").write_text("value: ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(tree.TreeError, match="set NOT_SET_ANYWHERE in .env"):
        tree.render(tmp_path, {"ADMIN_ALLOWLIST": "10.0.0.0/8"})


def test_render_rejects_empty_allowlist(tmp_path: Path) -> None:
    with pytest.raises(tree.TreeError, match="ADMIN_ALLOWLIST is empty"):
        tree.render(tmp_path, {"ADMIN_ALLOWLIST": " , "})


def test_render_rejects_set_but_empty_allowlist(tmp_path: Path) -> None:
    tree.lay_down(tmp_path, domain="lab.test", email="ops@lab.test")

    with pytest.raises(tree.TreeError, match="remove the line to use the default"):
        tree.render(tmp_path, {"ADMIN_ALLOWLIST": ""})


def test_render_rejects_invalid_allowlist_entry(tmp_path: Path) -> None:
    tree.lay_down(tmp_path, domain="lab.test", email="ops@lab.test")

    with pytest.raises(tree.TreeError, match="'10.0.0.300/8' is not an IP address"):
        tree.render(tmp_path, {"ADMIN_ALLOWLIST": "192.168.1.7,10.0.0.300/8"})


def test_allowlist_default_when_key_missing() -> None:
    assert tree.admin_allowlist({}) == ["10.0.0.0/8", "192.168.0.0/16"]
    assert tree.open_ranges(["10.0.0.0/8", "0.0.0.0/0", "::/0"]) == [
        "0.0.0.0/0",
        "::/0",
    ]


def test_init_without_terminal_names_flags(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "s")], input="")

    assert result.exit_code == 2, result.output
    assert "--domain is required" in result.output
    assert "pass --domain DOMAIN --email ADDRESS" in result.output


def test_init_updates_existing_env_keys(tmp_path: Path) -> None:
    target = tmp_path / "site"
    args = ["init", str(target), "--domain", "lab.test", "--email", "ops@lab.test"]
    runner = CliRunner()
    assert runner.invoke(main, args).exit_code == 0

    result = runner.invoke(
        main,
        ["init", str(target), "--domain", "new.lab.test", "--email", "ops@lab.test"],
    )

    assert result.exit_code == 0, result.output
    assert (
        f"updated LABDOCK_DOMAIN in {target / '.env'}: 'lab.test' -> 'new.lab.test'"
        in result.output
    )
    assert "ACME_EMAIL" not in result.output
    assert read_env(target / ".env")["LABDOCK_DOMAIN"] == "new.lab.test"


def test_init_existing_env_needs_no_flags(tmp_path: Path) -> None:
    target = tmp_path / "site"
    args = ["init", str(target), "--domain", "lab.test", "--email", "ops@lab.test"]
    runner = CliRunner()
    assert runner.invoke(main, args).exit_code == 0

    result = runner.invoke(main, ["init", str(target)], input="")

    assert result.exit_code == 0, result.output
    assert "kept the other settings of the existing" in result.output
    assert read_env(target / ".env")["LABDOCK_DOMAIN"] == "lab.test"
