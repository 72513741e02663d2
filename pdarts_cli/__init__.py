"""pdarts: Progressive DARTS architecture search as a library and a command-line tool.

The library never imports Typer or rich; ``pdarts_cli.cli`` is the command-line layer on top.
"""

__version__ = "0.1.0"
