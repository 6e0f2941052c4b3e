"""``python -m symbp``: the same command line as the ``symbp`` script."""

from symbp.cli import run

run()
