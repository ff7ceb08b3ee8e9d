"""Command line: ``python -m helpers validate DIR`` (more subcommands in cli.py)."""

from helpers.cli import main

raise SystemExit(main())
