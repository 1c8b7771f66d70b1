"""The exception that operations raise for a failed step or a bad setting."""

from __future__ import annotations


class OpsError(Exception):
    """An operation could not run; the message names the value and the fix."""
