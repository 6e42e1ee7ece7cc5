"""The analyst notebooks run, top to bottom, against a real server, and say the right things."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"


def run_notebook(path: Path, api: str) -> str:
    notebook = nbformat.read(path, as_version=4)
    os.environ["URBIS_API"] = api  # the kernel inherits the environment
    try:
        NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        del os.environ["URBIS_API"]
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.mark.api
def test_addresses_per_municipality_notebook(api):
    output = run_notebook(NOTEBOOKS / "01_addresses_per_municipality.ipynb", api)
    assert "31370 19 municipalities, 666 addresses" in output
    assert "{'Saint-Gilles': 419, 'Bruxelles': 247}" in output
    largest = float(output.split("largest area difference: ")[1].split(" m²")[0])
    assert largest < 1.0
