"""Backup plans, dependency order, settings and schedules: pure logic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labdock.ops import schedule
from labdock.ops.backup import plan_run
from labdock.ops.errors import OpsError
from labdock.ops.native import influx_backup_script, parse_export_path
from labdock.ops.project import Project, start_order
from labdock.ops.restore import restore_order
from labdock.ops.settings import BackupSettings, load_settings

MODEL: dict[str, Any] = {
    "name": "labdock",
    "services": {
        "influxdb": {
            "volumes": [
                {
                    "type": "volume",
                    "source": "influxdb_data",
                    "target": "/var/lib/influxdb2",
                },
                {
                    "type": "volume",
                    "source": "influxdb_config",
                    "target": "/etc/influxdb2",
                },
                {"type": "bind", "source": "/srv/init", "target": "/init"},
            ]
        },
        "emqx": {
            "volumes": [{"type": "volume", "source": "emqx_data", "target": "/d"}]
        },
        "sensor-acquisition": {
            "depends_on": {"emqx": {}, "influxdb": {}},
            "volumes": [
                {"type": "volume", "source": "acquisition_spool", "target": "/s"}
            ],
        },
        "socket-proxy": {},
        "traefik": {
            "depends_on": {"socket-proxy": {}},
            "volumes": [{"type": "volume", "source": "traefik_acme", "target": "/le"}],
        },
        "harbor-prepare": {"profiles": ["harbor-prepare"]},
    },
    "volumes": {
        "influxdb_data": {"name": "labdock_influxdb_data"},
        "influxdb_config": {"name": "labdock_influxdb_config"},
        "emqx_data": {"name": "labdock_emqx_data"},
        "acquisition_spool": {"name": "labdock_acquisition_spool"},
        "traefik_acme": {"name": "labdock_traefik_acme"},
    },
}


def _project(tmp_path: Path) -> Project:
    return Project(tmp_path, MODEL)


def _settings(**values: Any) -> BackupSettings:
    return BackupSettings.model_validate({"host": "lab", **values})


def _parts(plans: list[Any]) -> dict[str, list[str]]:
    return {plan.service: [part.name for part in plan.parts] for plan in plans}


def test_default_plan(tmp_path: Path) -> None:
    plans = plan_run(
        _project(tmp_path),
        _settings(),
        tree=tmp_path,
        services=None,
        include_secrets=False,
    )
    assert _parts(plans) == {
        "tree": ["config"],
        "emqx": ["data-export"],
        "influxdb": ["influx-backup"],
        "traefik": ["volume-traefik_acme"],
        "sensor-acquisition": ["volume-acquisition_spool"],
    }
    methods = {plan.service: plan.method for plan in plans}
    assert methods["sensor-acquisition"] == "stop"
    assert methods["traefik"] == "live"


def test_secret_volume_only_with_secrets(tmp_path: Path) -> None:
    settings = _settings(services={"influxdb": {"method": "stop"}})
    without = plan_run(
        _project(tmp_path),
        settings,
        tree=tmp_path,
        services=["influxdb"],
        include_secrets=False,
    )
    with_secrets = plan_run(
        _project(tmp_path),
        settings,
        tree=tmp_path,
        services=["influxdb"],
        include_secrets=True,
    )
    assert _parts(without)["influxdb"] == ["volume-influxdb_data"]
    assert _parts(with_secrets)["influxdb"] == [
        "volume-influxdb_data",
        "volume-influxdb_config",
    ]
    assert _parts(with_secrets)["secrets"] == ["files"]


def test_volume_parts_name_docker_volumes(tmp_path: Path) -> None:
    settings = _settings(services={"influxdb": {"method": "pause"}})
    plans = plan_run(
        _project(tmp_path),
        settings,
        tree=tmp_path,
        services=["influxdb"],
        include_secrets=False,
    )
    part = plans[1].parts[0]
    assert part.volume == "labdock_influxdb_data"
    assert part.tags == ("labdock", "service=influxdb", "part=volume-influxdb_data")


def test_unknown_service_rejected(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="unknown service nope"):
        plan_run(
            _project(tmp_path),
            _settings(),
            tree=tmp_path,
            services=["nope"],
            include_secrets=False,
        )


def test_misspelt_settings_service_rejected(tmp_path: Path) -> None:
    settings = _settings(services={"influxdbb": {"method": "skip"}})
    with pytest.raises(OpsError, match="names influxdbb, which is not a service"):
        plan_run(
            _project(tmp_path),
            settings,
            tree=tmp_path,
            services=None,
            include_secrets=False,
        )


def test_unknown_volume_rejected(tmp_path: Path) -> None:
    settings = _settings(services={"emqx": {"method": "stop", "volumes": ["logs"]}})
    with pytest.raises(OpsError, match="does not mount"):
        plan_run(
            _project(tmp_path),
            settings,
            tree=tmp_path,
            services=["emqx"],
            include_secrets=False,
        )


def test_native_only_where_supported(tmp_path: Path) -> None:
    settings = _settings(services={"traefik": {"method": "native"}})
    with pytest.raises(OpsError, match="native backup only for emqx, harbor, influxdb"):
        plan_run(
            _project(tmp_path),
            settings,
            tree=tmp_path,
            services=["traefik"],
            include_secrets=False,
        )


def test_harbor_planned_when_prepared(tmp_path: Path) -> None:
    installer = tmp_path / "harbor" / "installer"
    installer.mkdir(parents=True)
    (installer / "docker-compose.yml").write_text("services: {}\n")
    settings = _settings(harbor_data="/srv/harbor")
    plans = plan_run(
        _project(tmp_path),
        settings,
        tree=tmp_path,
        services=["harbor"],
        include_secrets=False,
    )
    harbor = plans[-1]
    assert [part.name for part in harbor.parts] == [
        "database",
        "registry",
        "secret-key",
    ]
    assert harbor.parts[1].path == Path("/srv/harbor/registry")


def test_dependents_and_order(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert project.dependents("influxdb") == {"sensor-acquisition"}
    assert project.dependents("socket-proxy") == {"traefik"}
    order = project.start_order()
    assert order.index("influxdb") < order.index("sensor-acquisition")
    assert order.index("socket-proxy") < order.index("traefik")


def test_start_order_cycle() -> None:
    with pytest.raises(OpsError, match="cycle between a, b"):
        start_order({"a": {"b"}, "b": {"a"}, "c": set()})


def test_restore_order_acquisition_last() -> None:
    assert restore_order(
        ["sensor-acquisition", "custom", "influxdb", "tree", "emqx"]
    ) == [
        "tree",
        "emqx",
        "influxdb",
        "custom",
        "sensor-acquisition",
    ]


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    (tmp_path / ".labdock").mkdir()
    (tmp_path / ".labdock" / "ops.yaml").write_text(
        "backup:\n  retention: {keep_daily: -1}\n  services:\n    lam: {method: copy}\n"
    )
    with pytest.raises(OpsError) as caught:
        load_settings(tmp_path)
    message = str(caught.value)
    assert "backup.retention.keep_daily" in message
    assert "backup.services.lam.method" in message


def test_settings_default_without_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.backup.retention.keep_daily == 7
    assert settings.health.backup_warning_hours == 26


def test_timer_unit_text(tmp_path: Path) -> None:
    plan = schedule.Schedule(tree=tmp_path, at="2:05", labdock="/usr/bin/labdock")
    timer = schedule.timer_unit(plan)
    assert "OnCalendar=*-*-* 02:05:00" in timer
    assert "Persistent=true" in timer
    service = schedule.service_unit(plan)
    assert f"ExecStart=/usr/bin/labdock backup run --prune -C {tmp_path}" in service
    assert "Type=oneshot" in service


def test_cron_line(tmp_path: Path) -> None:
    plan = schedule.Schedule(tree=tmp_path, at="23:59", labdock="/usr/bin/labdock")
    assert schedule.cron_line(plan) == (
        f"59 23 * * * /usr/bin/labdock backup run --prune -C {tmp_path}"
    )


def test_schedule_time_rejected(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="HH:MM"):
        schedule.cron_line(schedule.Schedule(tree=tmp_path, at="25:00"))


def test_install_timer_without_systemd(tmp_path: Path) -> None:
    plan = schedule.Schedule(tree=tmp_path, labdock="/usr/bin/labdock")
    written, enabled = schedule.install_timer(
        plan, unit_dir=tmp_path / "units", enable=False
    )
    assert enabled is False
    assert sorted(path.name for path in written) == [
        "labdock-backup.service",
        "labdock-backup.timer",
    ]


def test_emqx_export_path_parsed() -> None:
    output = (
        'Exporting data to "data/backup/emqx-export-2023-06-19-15-14-19.947.tar.gz"...\n'
        "Data has been successfully exported to data/backup/emqx-export-2023-06-19-15-14-19.947.tar.gz.\n"
    )
    assert parse_export_path(output) == (
        "/opt/emqx/data/backup/emqx-export-2023-06-19-15-14-19.947.tar.gz"
    )


def test_influx_token_stays_in_container() -> None:
    script = influx_backup_script()
    assert '"$(cat /run/secrets/influxdb_admin_token)"' in script
    assert script.startswith(
        "rm -rf /var/lib/influxdb2/.labdock-backup && influx backup"
    )
