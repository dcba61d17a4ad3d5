"""Subcommands of the ``perception`` CLI, one module each (see perception/cli.py)."""
