"""Doctor checks that need no Docker Engine."""

from __future__ import annotations

from labdock.ops.doctor import (
    container_findings,
    strip_ansi,
    traefik_log_findings,
)


def test_coloured_traefik_error_found() -> None:
    line = (
        '2026-01-01T00:00:00Z \x1b[31mERR\x1b[0m error="middleware '
        '\\"admin-allowlist@file\\" does not exist" entryPointName=websecure '
        "routerName=emqx@docker"
    )

    [finding] = traefik_log_findings([line])

    assert finding.service == "traefik"
    assert finding.detail == (strip_ansi(line),)
    assert "\x1b" not in finding.detail[0]


def test_coloured_info_line_ignored() -> None:
    line = "2026-01-01T00:00:00Z \x1b[32mINF\x1b[0m Starting provider *docker.Provider"

    assert traefik_log_findings([line]) == []


def test_clean_exit_explained() -> None:
    container = {"State": {"Status": "exited", "ExitCode": 0}, "RestartCount": 0}

    [finding] = container_findings("lam", container, [])

    assert finding.problem == (
        "it exited with code 0: it ended without an error "
        "(it was stopped, or its command finished)"
    )
