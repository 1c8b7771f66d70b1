"""The subprocess runner masks secrets in what it logs and raises."""

from __future__ import annotations

import logging
import sys

import pytest

from labdock import execute


def test_mask_replaces_each_secret() -> None:
    assert execute.mask("user s3cret and s3cret-long", ["s3cret", "s3cret-long"]) == (
        "user ****** and ******"
    )


def test_run_masks_secret_in_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="labdock.execute")
    execute.run(
        [sys.executable, "-c", "pass", "hunter2-value"], secrets=["hunter2-value"]
    )
    assert "hunter2-value" not in caplog.text
    assert execute.MASK in caplog.text


def test_run_masks_credential_environment(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="labdock.execute")
    with pytest.raises(execute.CommandError) as raised:
        execute.run(
            [sys.executable, "-c", "import os,sys; sys.exit(os.environ['API_TOKEN'])"],
            env={"API_TOKEN": "tok-123456"},
        )
    assert "tok-123456" not in str(raised.value)
    assert "tok-123456" not in caplog.text
    assert raised.value.result is not None
    assert raised.value.result.returncode == 1


def test_run_reports_missing_command() -> None:
    with pytest.raises(execute.CommandError, match="command not found"):
        execute.run(["/nonexistent/tool"])
