"""Where the project's own files live (sample config, migrations, front-end packages)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "urbis.yaml"
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
NODE_MODULES = PROJECT_ROOT / "node_modules"
