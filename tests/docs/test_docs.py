"""The MkDocs site builds in strict mode and covers what the code defines.

One strict build (module fixture) regenerates the reference pages through
the hook in docs/hooks/reference.py. The tests then check the built site
and the page sources against the click commands, the configuration schema,
the decoder registry and the services/ tree.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
import yaml
from pydantic import BaseModel

from labdock.acquire.config import AcquireConfig
from labdock.acquire.decoders import registry
from labdock.cli import main

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SERVICES = REPO / "services"

# The outline of the services page, in order: the sections of the design
# page that the maintainers asked for.
SERVICES_OUTLINE = [
    "Philosophy",
    "Repository structure",
    "Traefik Configuration",
    "Main Configuration",
    "Dynamic Configuration",
    "Harbor Configuration",
    "Docker Compose",
    "Design Rationale",
    "EMQX Configuration",
    "Docker Compose",
    "Design Rationale",
    "InfluxDB Configuration",
    "Docker Compose",
    "Design Rationale",
    "LDAP Account Manager",
    "Docker Compose",
    "Design Rationale",
    "Sensor Data Acquisition",
    "Custom Service",
    "Dockerfile",
    "Design Rationale",
    "Network Architecture",
    "Docker Networks",
    "Why This Design",
    "Secrets Management",
    "Backup Strategy",
    "Deployment Procedures",
    "Initial Deployment",
    "Updating Services",
    "Monitoring and Logging",
    "Log Collection",
    "Health Checks",
    "Troubleshooting",
    "Common Issues",
    "Service Won't Start",
    "Network Connectivity",
    "Volume Permission Issues",
]

PLACEHOLDERS = re.compile(
    r"content to be added|\bTBD\b|lorem ipsum|\bFIXME\b|coming soon|\bXXX\b",
    re.IGNORECASE,
)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
HTML_TAG = re.compile(r"<[^>]+>")
# Files under services/ that are configuration and so must be shown on the
# services page through a snippet include.
CONFIG_SUFFIXES = (".yaml", ".yml", ".tmpl", ".conf", ".sh", ".example")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_reference_hook", DOCS / "hooks" / "reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the site once with `mkdocs build --strict`; return its directory."""
    site_dir = tmp_path_factory.mktemp("site")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(REPO / "mkdocs.yml"),
            "--site-dir",
            str(site_dir),
        ],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return site_dir


def page_text(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text(encoding="utf-8")


def walk_commands(
    command: click.Command, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command, info_name=path[-1])
        for name in command.list_commands(context):
            child = command.get_command(context, name)
            if child is not None and not child.hidden:
                yield from walk_commands(child, (*path, name))


def schema_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Yield the dotted key of every field in `model`, nested models included."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                separator = "[]." if "list" in str(annotation) else "."
                yield from schema_keys(candidate, f"{key}{separator}")


def yaml_blocks(markdown: str) -> Iterator[str]:
    for match in re.finditer(r"^```yaml[^\n]*\n(.*?)^```", markdown, re.M | re.S):
        yield match.group(1)


def test_build_strict_succeeds(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "services" / "index.html").is_file()
    assert (site / "reference" / "cli" / "index.html").is_file()


def test_generated_files_are_current(site: Path) -> None:
    generator = load_generator()
    changed = generator.generate()
    assert changed == [], f"the build left stale generated files: {changed}"


def test_no_placeholder_left(site: Path) -> None:
    for source in sorted(DOCS.rglob("*.md")):
        text = HTML_COMMENT.sub("", source.read_text(encoding="utf-8"))
        found = PLACEHOLDERS.search(text)
        assert found is None, (
            f"{source.relative_to(REPO)}: placeholder {found.group()!r}"
        )
    for page in sorted(site.rglob("*.html")):
        if "search" in page.parts:
            continue
        text = HTML_COMMENT.sub("", page.read_text(encoding="utf-8"))
        found = PLACEHOLDERS.search(text)
        assert found is None, (
            f"built {page.relative_to(site)}: placeholder {found.group()!r}"
        )


def test_no_snippet_left_unexpanded(site: Path) -> None:
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        assert "--8&lt;--" not in text, (
            f"{page.relative_to(site)}: snippet not expanded"
        )
        assert "--8<--" not in text, f"{page.relative_to(site)}: snippet not expanded"


def test_cli_reference_lists_every_command(site: Path) -> None:
    html = page_text(site, "reference/cli")
    commands = list(walk_commands(main, ("labdock",)))
    assert len(commands) > 10
    for path, command in commands:
        anchor = "-".join(path)
        assert f'id="{anchor}"' in html, f"{' '.join(path)} has no section"
        summary = command.get_short_help_str(limit=60).rstrip(".")
        if summary:
            words = summary.split()[:4]
            assert " ".join(words) in html, f"{' '.join(path)}: help text missing"


def test_services_page_covers_every_service(site: Path) -> None:
    source = (DOCS / "services.md").read_text(encoding="utf-8")
    directories = [p for p in SERVICES.iterdir() if p.is_dir()]
    assert directories
    for directory in directories:
        assert f"services/{directory.name}/" in source, (
            f"services/{directory.name}/ is not described on the services page"
        )


def test_services_page_includes_config_files(site: Path) -> None:
    source = (DOCS / "services.md").read_text(encoding="utf-8")
    included = set(re.findall(r'^--8<-- "([^"]+)"', source, re.M))
    for path in sorted(SERVICES.rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        is_config = path.suffix in CONFIG_SUFFIXES or path.name == "Dockerfile"
        if not path.is_file() or not is_config or "/secrets/" in relative:
            continue
        assert relative in included, f"{relative} is not included on the services page"


def test_services_page_follows_outline() -> None:
    source = (DOCS / "services.md").read_text(encoding="utf-8")
    headings = [
        match.group(1).strip() for match in re.finditer(r"^#{2,4} (.+)$", source, re.M)
    ]
    position = 0
    for expected_heading in SERVICES_OUTLINE:
        assert expected_heading in headings[position:], (
            f"heading {expected_heading!r} missing or out of order after "
            f"{headings[:position][-1:]}"
        )
        position = headings.index(expected_heading, position) + 1


def test_services_page_shows_file_contents(site: Path) -> None:
    text = html.unescape(HTML_TAG.sub("", page_text(site, "services")))
    source = (DOCS / "services.md").read_text(encoding="utf-8")
    included = re.findall(r'^--8<-- "(services/[^"]+)"', source, re.M)
    assert included
    for relative in included:
        for line in (REPO / relative).read_text(encoding="utf-8").splitlines():
            if line.strip():
                assert line.strip() in text, f"{relative}: line {line!r} not shown"


def test_every_decoder_documented(site: Path) -> None:
    reference = page_text(site, "reference/configuration")
    guide = page_text(site, "acquisition")
    for name, spec in registry().items():
        in_reference = f'id="decoder-{name}"' in reference
        assert in_reference or f"<code>{name}</code>" in guide, f"decoder {name}"
        for option in spec.options_model.model_fields:
            assert f"<code>{option}</code>" in reference, f"{name} option {option}"


def test_configuration_reference_lists_every_key(site: Path) -> None:
    reference = page_text(site, "reference/configuration")
    for key in schema_keys(AcquireConfig):
        assert f"<code>{key}</code>" in reference, f"key {key} missing"


def test_yaml_examples_validate() -> None:
    top_level = set(AcquireConfig.model_fields)
    checked = 0
    for source in sorted(DOCS.glob("*.md")):
        for block in yaml_blocks(source.read_text(encoding="utf-8")):
            if block.lstrip().startswith("--8<--"):
                continue
            document: Any = yaml.safe_load(block)
            is_config = isinstance(document, dict) and set(document) <= top_level
            if not is_config or not {"broker", "mappings"} & set(document):
                continue
            AcquireConfig.model_validate(document)
            checked += 1
    assert checked >= 2


def test_line_range_snippets_cover_whole_blocks() -> None:
    # A snippet "FILE:START:END" shows lines START to END. When the file
    # changes, the range drifts: it must still start and end at a block
    # boundary (a blank line or the file's edge on either side).
    checked = 0
    for source in sorted(DOCS.glob("*.md")):
        text = source.read_text(encoding="utf-8")
        for match in re.finditer(r'--8<-- "([^":]+):(\d+):(\d+)"', text):
            path, start, end = match.group(1), int(match.group(2)), int(match.group(3))
            lines = (REPO / path).read_text(encoding="utf-8").splitlines()
            where = f"{source.name}: {path}:{start}:{end}"
            assert 1 <= start <= end <= len(lines), f"{where}: outside the file"
            assert lines[start - 1].strip(), f"{where}: starts on a blank line"
            assert lines[end - 1].strip(), f"{where}: ends on a blank line"
            before = lines[start - 2] if start > 1 else ""
            after = lines[end] if end < len(lines) else ""
            assert not before.strip(), f"{where}: starts inside a block"
            assert not after.strip(), f"{where}: ends inside a block"
            checked += 1
    assert checked >= 1


def test_emqx_session_limits_shown() -> None:
    # The pages explain these three values; the included range must hold them.
    source = (DOCS / "services.md").read_text(encoding="utf-8")
    match = re.search(r'--8<-- "services/emqx/etc/emqx.conf:(\d+):(\d+)"', source)
    assert match, "services.md does not include the mqtt block of emqx.conf"
    lines = (SERVICES / "emqx" / "etc" / "emqx.conf").read_text().splitlines()
    included_text = "\n".join(lines[int(match.group(1)) - 1 : int(match.group(2))])
    for setting in ("max_inflight", "max_mqueue_len", "session_expiry_interval"):
        assert re.search(rf"^\s*{setting} = ", included_text, re.M), (
            f"{setting} is not in the included lines"
        )


def command_lines(markdown: str) -> Iterator[str]:
    """Yield each `labdock ...` command in code spans and shell code blocks."""
    for match in re.finditer(r"`(labdock [^`]+)`", markdown):
        yield match.group(1)
    for block in re.finditer(
        r"^```(?:bash|console)[^\n]*\n(.*?)^```", markdown, re.M | re.S
    ):
        for line in block.group(1).splitlines():
            stripped = line.strip().removeprefix("$ ")
            stripped = re.sub(r"^\S*/(?=labdock )", "", stripped)
            if stripped.startswith("labdock "):
                yield stripped


def test_documented_commands_exist() -> None:
    for source in sorted(DOCS.glob("*.md")):
        for line in command_lines(source.read_text(encoding="utf-8")):
            words = line.split()
            command: click.Command = main
            for word in words[1:]:
                if not isinstance(command, click.Group) or word.startswith("-"):
                    break
                context = click.Context(command, info_name=word)
                child = command.get_command(context, word)
                assert child is not None, (
                    f"{source.name}: `{line}`: {word} is not a command of "
                    f"labdock {command.name if command is not main else ''}"
                )
                command = child


def test_ops_settings_keys_exist() -> None:
    from labdock.ops.settings import Settings

    source = (DOCS / "services.md").read_text(encoding="utf-8")
    sections = {
        "backup": Settings.model_fields["backup"].annotation,
        "health": Settings.model_fields["health"].annotation,
    }
    found = 0
    for match in re.finditer(r"(?<![\w./-])(backup|health)\.([a-z_]+)\b", source):
        model = sections[match.group(1)]
        assert isinstance(model, type) and issubclass(model, BaseModel)
        key = match.group(2)
        assert key in model.model_fields, f"services.md names {match.group()}"
        found += 1
    assert found >= 5
