"""Every tutorial notebook runs top to bottom.

One test class per notebook: the test command's `--dist loadscope` sends each class to whichever
pytest-xdist worker is free, so the notebooks run side by side instead of queueing in one process.
"""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "tutorials", "*.ipynb")))
# The test command leaves these out (`large`): 03 trains three XLA models (390 s of a 2,008 s run of the
# test command on 2 cores), each of which has its own model test case.
LARGE = {"03_seed_models"}


def run_notebook(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def _tutorial_test_class(path):
    def test_tutorial_runs_top_to_bottom(self, tmp_path):
        run_notebook(path, tmp_path)

    stem = os.path.splitext(os.path.basename(path))[0]
    name = "TestTutorial_" + stem
    attributes = {"test_tutorial_runs_top_to_bottom": test_tutorial_runs_top_to_bottom}
    if stem in LARGE:
        attributes["pytestmark"] = [pytest.mark.large]
    return name, type(name, (), attributes)


for _path in TUTORIALS:
    _name, _class = _tutorial_test_class(_path)
    globals()[_name] = _class
