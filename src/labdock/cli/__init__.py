"""The `labdock` command line.

Each module in this package defines `COMMANDS`, a list of click commands or
groups, and is picked up here, so that a command group lives in one module
and adding one touches no other file.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from labdock import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labdock")
def main() -> None:
    """Run a research lab's service platform on one Docker host.

    Exit codes: 0 success, 1 findings or a failed target, 2 usage or tool error.
    """


def _register_commands() -> None:
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for command in getattr(module, "COMMANDS", []):
            main.add_command(command)


_register_commands()
