"""The `urbis` command: database, migrations, configuration, sync and serving."""
