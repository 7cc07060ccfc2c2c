"""The ``downsizenet`` command line: one thin module per command group."""

from downsizenet_hub.cli.app import app, main

__all__ = ["app", "main"]
