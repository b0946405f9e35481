"""The `phonehome` command line: one module per command, `main` in main.py."""

from phonehome.analysis.cli.main import main

__all__ = ["main"]
