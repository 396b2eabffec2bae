"""`python -m remi` is the `remi` command (for an environment without the console script on PATH)."""

from remi.cli import main

main()
