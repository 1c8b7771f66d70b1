"""Doctor checks that need no Docker Engine."""

from __future__ import annotations

from labdock.ops.doctor import strip_ansi, traefik_log_findings


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
