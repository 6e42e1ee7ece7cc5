"""The reader (the API's) and writer (migrations, sync) roles and their privileges.

Creates the roles when the migrating role may (CREATEROLE or SUPERUSER), otherwise says so and
goes on; the privileges are urbis_core.roles'. The role names come from `urbis migrate`
(URBIS_DB_READER_ROLE, URBIS_DB_WRITER_ROLE), or from the environment under plain alembic.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""

from alembic import context, op

from urbis_core.roles import apply_roles, revoke_defaults
from urbis_core.settings import DatabaseRoles, Settings

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _roles() -> DatabaseRoles:
    given = context.config.attributes.get("roles")
    return given if given is not None else Settings.from_env().database().roles


def upgrade() -> None:
    apply_roles(op.get_bind(), _roles())


def downgrade() -> None:
    # The roles are the cluster's, perhaps other databases' too: they stay, and so do grants on
    # what remains; the default privileges would keep them from ever being dropped.
    revoke_defaults(op.get_bind(), _roles())
