"""Health verdicts that need no Docker Engine."""

from __future__ import annotations

from datetime import UTC, datetime

from labdock.ops import health
from labdock.ops.settings import HealthSettings

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _entry(last_success: str, result: str = "ok") -> dict[str, object]:
    return {
        "last_success": last_success,
        "last_attempt": last_success,
        "last_result": result,
    }


def test_old_service_backup_critical() -> None:
    status = {"services": {"lam": _entry("2026-12-01T03:15:00+00:00")}}

    [check] = health.backup_checks(status, HealthSettings(), NOW)

    assert check.severity == health.CRITICAL


def test_old_secrets_backup_ok() -> None:
    # The scheduled run leaves secrets out, so a secrets backup from days
    # ago is the documented routine, not a missed backup.
    status = {"services": {"secrets": _entry("2026-12-01T03:15:00+00:00")}}

    [check] = health.backup_checks(status, HealthSettings(), NOW)

    assert check.severity == health.OK
    assert "only with --include-secrets" in check.message


def test_failed_secrets_backup_warns() -> None:
    status = {"services": {"secrets": _entry("2026-12-01T03:15:00+00:00", "failed")}}

    [check] = health.backup_checks(status, HealthSettings(), NOW)

    assert check.severity == health.WARNING
