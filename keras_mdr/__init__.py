"""keras_mdr: multi-domain, multi-task recommendation models for Keras 3.

    import keras_mdr as km
    data = km.data.synthetic()
    model = km.build_model("mmoe", features=data.features, domain=data.domain,
                           tasks=data.tasks, data=data.frame)
"""

from keras_mdr import compat

compat.check_environment()

from keras_mdr import data, export, features, layers, models, training, transfer, transrec  # noqa: E402
from keras_mdr.export import export_saved_model  # noqa: E402
from keras_mdr.features.adapt import adapt  # noqa: E402
from keras_mdr.models.registry import build_model, list_models  # noqa: E402
from keras_mdr.specs import DenseFeature, Domain, SequenceFeature, SparseFeature, Task  # noqa: E402
from keras_mdr.version import __version__  # noqa: E402
