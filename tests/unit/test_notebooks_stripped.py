"""The notebooks are kept in git without outputs: the test suite runs them, git keeps the code.

`.pre-commit-config.yaml` strips them (nbstripout) before each commit; this catches a notebook
committed without the hook.
"""

from __future__ import annotations

import nbformat
import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_holds_no_output(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name}, cell {number}: outputs kept; run nbstripout"
        assert cell.execution_count is None, f"{path.name}, cell {number}: execution count kept"
    assert "widgets" not in notebook.metadata  # nbstripout drops widget state too
