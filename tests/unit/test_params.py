import subprocess
import sys

import pytest

from geoapi.params import reject_unknown
from urbis_core.errors import InvalidParameter


def test_unknown_parameter_is_named():
    reject_unknown(["limit"], {"limit", "f"})
    with pytest.raises(InvalidParameter, match="'colour'"):
        reject_unknown(["limit", "colour"], {"limit", "f"})


def test_the_edge_imports_no_sql():
    # Parsing a request must not pull in the query building (nor SQLAlchemy at all).
    code = (
        "import sys, geoapi.params, geoapi.query_models; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy' "
        "or m == 'geoapi.features'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
