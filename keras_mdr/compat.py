"""Fail fast, with the fix in the message, on an environment keras_mdr cannot use."""

import os


def check_environment():
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
    if legacy:
        raise ImportError(
            "keras_mdr needs Keras 3, but TF_USE_LEGACY_KERAS is set and selects tf-keras. "
            "Unset TF_USE_LEGACY_KERAS."
        )
    import keras

    major = int(keras.__version__.split(".")[0])
    if major < 3:
        raise ImportError(
            f"keras_mdr needs Keras 3 (found keras {keras.__version__}). Run: pip install 'keras>=3.15'"
        )
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"keras_mdr needs the TensorFlow backend (preprocessing, tf.data and SavedModel export "
            f"are TensorFlow), but KERAS_BACKEND is {backend!r}. Set KERAS_BACKEND=tensorflow."
        )
