"""Every tutorial notebook runs top to bottom.

One test class per notebook: the test command's `--dist loadscope` sends each class to whichever
pytest-xdist worker is free, so the notebooks run side by side instead of queueing in one process.
"""

import glob
import os

import nbformat
from nbclient import NotebookClient

TUTORIALS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "tutorials", "*.ipynb")))


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
    return name, type(name, (), {"test_tutorial_runs_top_to_bottom": test_tutorial_runs_top_to_bottom})


for _path in TUTORIALS:
    _name, _class = _tutorial_test_class(_path)
    globals()[_name] = _class
