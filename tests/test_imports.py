"""Every subpackage imports on its own, first, in a fresh interpreter (no import cycle hides behind `import keras_mdr`)."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPACKAGES = sorted(
    os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, ".")
    for path in glob.glob(os.path.join(ROOT, "keras_mdr", "*", "__init__.py"))
)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_a_subpackage_imports_first_in_a_fresh_interpreter(name):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
