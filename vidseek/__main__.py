"""``python -m vidseek …``: the same command line as ``vidseek …``."""

from vidseek.apps.cli.main import main

main()
