"""The ``vidseek`` command line (typer): ``main`` holds the app; ``train`` and ``testbed`` add their commands."""
