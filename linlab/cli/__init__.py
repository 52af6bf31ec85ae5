"""The ``linlab`` command. The only module that reads argv; commands load lazily, so
``linlab --help`` answers without importing torch."""

from __future__ import annotations

import importlib

import click

from .. import __version__
from ..atomic import DiskFullError

# command name -> "module:function", imported only when the command runs or is listed
COMMANDS = {
    "train": "linlab.cli.train:train",
    "predict": "linlab.cli.predict:predict",
    "sweep": "linlab.cli.sweep:sweep",
    "advise": "linlab.cli.advise:advise",
    "explore": "linlab.cli.explore:explore",
    "reproduce": "linlab.cli.reproduce:reproduce",
    "report": "linlab.cli.report:report",
    "compress": "linlab.cli.compress:compress",
}


class UserError(click.ClickException):
    """A problem with the user's input: printed without a traceback, exit code 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True, file=file)


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError,
                PermissionError, DiskFullError) as e:
            raise UserError(str(e)) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="linlab")
def main():
    """linlab: train and understand linear regression and deep linear networks
    by gradient descent."""
