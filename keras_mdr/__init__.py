"""keras_mdr: multi-domain, multi-task recommendation models for Keras 3.

    import keras_mdr as km
    data = km.data.synthetic()
    model = km.build_model("mmoe", features=data.features, domain=data.domain,
                           tasks=data.tasks, data=data.frame)

Subpackages (`km.data`, `km.serving`, ...) and the names below load on first
use: `import keras_mdr` alone imports neither TensorFlow nor Keras, so the
command line can set TensorFlow's log level before TensorFlow starts, and an
optional extra (gRPC for `km.serving`) is needed only by what uses it. The
first use also checks the environment (Keras 3, TensorFlow backend).
"""

import importlib

from keras_mdr.version import __version__

_SUBPACKAGES = (
    "config",
    "data",
    "export",
    "features",
    "layers",
    "mixed_precision",
    "models",
    "optimizers",
    "serving",
    "specs",
    "testing",
    "training",
    "transfer",
    "transrec",
)
# Top-level names and the module that defines them. `build_model` comes from
# `keras_mdr.models`, whose import registers every model of the zoo.
_NAMES = {
    "export_saved_model": "keras_mdr.export",
    "adapt": "keras_mdr.features.adapt",
    "build_model": "keras_mdr.models",
    "list_models": "keras_mdr.models",
    "DenseFeature": "keras_mdr.specs",
    "Domain": "keras_mdr.specs",
    "SequenceFeature": "keras_mdr.specs",
    "SparseFeature": "keras_mdr.specs",
    "Task": "keras_mdr.specs",
}

__all__ = ["__version__", *_SUBPACKAGES, *_NAMES]

_environment_checked = False


def __getattr__(name):
    global _environment_checked
    if name in _SUBPACKAGES:
        module_name, attribute = f"keras_mdr.{name}", None
    elif name in _NAMES:
        module_name, attribute = _NAMES[name], name
    else:
        raise AttributeError(f"module 'keras_mdr' has no attribute {name!r}")
    if not _environment_checked:
        from keras_mdr import compat

        compat.check_environment()
        _environment_checked = True
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
