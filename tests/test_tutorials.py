"""Every tutorial notebook runs top to bottom."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "tutorials", "*.ipynb")))


@pytest.mark.parametrize("path", TUTORIALS, ids=os.path.basename)
def test_tutorial_runs_top_to_bottom(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
