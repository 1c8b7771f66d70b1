"""The `labdock` command line.

Each module in this package defines `COMMANDS`, a list of click commands or
groups, and is picked up here, so that a command group lives in one module
and adding one touches no other file.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

import click

from labdock import __version__


class _Commands(click.Group):
    """The top-level group, importing command modules only when needed.

    A command is looked for first in the module of its own name: `labdock
    acquire` imports only `labdock.cli.acquire`, so the long-running service
    doesn't carry the memory of every other command. Listing the commands,
    or running one defined in a module of another name, imports them all.
    """

    _all_loaded = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name.isidentifier():
            self._load(cmd_name)
        if cmd_name not in self.commands:
            self._load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return super().list_commands(ctx)

    def _load(self, module_name: str) -> None:
        if module_name.startswith("_"):
            return
        if importlib.util.find_spec(f"{__name__}.{module_name}") is None:
            return
        module = importlib.import_module(f"{__name__}.{module_name}")
        for command in getattr(module, "COMMANDS", []):
            self.add_command(command)

    def _load_all(self) -> None:
        if self._all_loaded:
            return
        for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            self._load(module_info.name)
        self._all_loaded = True


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labdock")
def main() -> None:
    """Run a research lab's service platform on one Docker host.

    Exit codes: 0 success, 1 findings or a failed target, 2 usage or tool error.
    """
