"""`python -m urbis_cli` = `urbis` (how `urbis up` starts its sync worker)."""

from urbis_cli.main import cli

cli(prog_name="urbis")
