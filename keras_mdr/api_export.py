"""One decorator that names a symbol publicly and registers it for saving."""

import keras

PACKAGE = "keras_mdr"


def km_export(path):
    """Registers a class as Keras-serializable under its public path.

    `@km_export("keras_mdr.layers.DomainDense")` registers the class under the
    package `keras_mdr` and its class name, so `.keras` files load it with
    `safe_mode=True` and no `custom_objects`. The public namespace itself is
    written out by each package's `__init__.py`; the path documents where the
    symbol is exported and is checked against the class name.
    """
    if not path.startswith(PACKAGE + "."):
        raise ValueError(f"Export path must start with '{PACKAGE}.', got {path!r}")

    def decorator(symbol):
        if path.rsplit(".", 1)[-1] != symbol.__name__:
            raise ValueError(
                f"Export path {path!r} does not end with the symbol's name "
                f"{symbol.__name__!r}"
            )
        symbol._km_export_path = path
        return keras.saving.register_keras_serializable(package=PACKAGE)(symbol)

    return decorator
