"""``python -m pdarts_cli`` (what torchrun starts)."""

from pdarts_cli.cli.app import main

main()
