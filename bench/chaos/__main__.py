"""`python -m bench.chaos --seed N --duration S` (what `make chaos` runs)."""

from bench.chaos.run import cli

cli()
