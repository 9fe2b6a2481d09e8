import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Tests compile many small XLA programs and run each a few steps: compiling, not running, is their cost on
# CPU, so LLVM's optimisation passes are turned off (as JAX's `jax_disable_most_optimizations` does for smoke
# tests). Set before TensorFlow loads; notebooks and subprocesses inherit it. Benchmarks never set it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

import keras  # noqa: E402
import pytest  # noqa: E402


# The test command hands test files (and each tutorial's class) to 4 processes in collection order
# (`--dist loadscope`): the longest go first, so that none of them starts last and runs alone at the end.
RUN_FIRST = ("test_tutorials.py", "test_distributed.py", "test_readme.py", "test_learning.py", "test_serving.py",
             "test_cli.py", "test_hamur.py", "test_ple.py", "test_m2m.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return RUN_FIRST.index(name) if name in RUN_FIRST else len(RUN_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
