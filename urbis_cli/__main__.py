"""`python -m urbis_cli` = `urbis` (how `urbis up` starts its sync worker)."""

from urbis_cli.main import main

main()
