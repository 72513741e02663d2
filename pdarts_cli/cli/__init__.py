"""The ``pdarts`` command line: Typer commands that parse, call one library function, render.

Importing this package does not import torch, so ``pdarts --help`` stays instant.
"""
