"""Models by name: `build_model("mmoe", ...)` and `list_models()`."""

import inspect

from keras_mdr.did_you_mean import did_you_mean
from keras_mdr.features.adapt import adapt

_MODELS = {}
_BASE_PARAMETERS = ("loss_reduction", "batch_size", "dtype_policy", "name")
_SPEC_PARAMETERS = ("self", "features", "domain", "tasks", "kwargs")


def register_model(name):
    """Class decorator: makes a `MultiDomainModel` subclass buildable by `name`."""

    def decorator(cls):
        if name in _MODELS:
            raise ValueError(f"A model named {name!r} is already registered")
        _MODELS[name] = cls
        cls.registered_name = name
        return cls

    return decorator


def list_models():
    """The names `build_model` accepts, sorted."""
    return sorted(_MODELS)


def model_class(name):
    if name not in _MODELS:
        raise ValueError(
            f"Unknown model {name!r}{did_you_mean(str(name), _MODELS)}; available: {', '.join(list_models())}"
        )
    return _MODELS[name]


def hyper_parameters(name):
    """`{parameter: default}` of a registered model, the base parameters included."""
    signature = inspect.signature(model_class(name).__init__)
    params = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.name not in _SPEC_PARAMETERS and p.kind is not p.VAR_KEYWORD
    }
    params.setdefault("loss_reduction", "pooled")
    params.setdefault("batch_size", 1024)
    params.setdefault("dtype_policy", None)
    return params


def build_model(name, features, domain, tasks, data=None, **hyper_params):
    """Builds a registered model.

    Args:
        name: a name from `list_models()`.
        features: feature specs (`SparseFeature`, ...) or their dict forms.
        domain: a `Domain`, its dict form, or the domain column's name.
        tasks: `Task` specs, their dict forms or task names.
        data: training data (DataFrame or dict of columns) to learn
            vocabularies, normalisation statistics and domains from, if the
            specs do not carry them yet.
        **hyper_params: the model's hyper-parameters (see the model's
            docstring, or `keras_mdr.models.hyper_parameters(name)`), and
            `MultiDomainModel`'s: `loss_reduction`, `batch_size` and
            `dtype_policy` (`"mixed_bfloat16"` or `"mixed_float16"` for
            mixed precision).

    Returns:
        A `keras.Model` (a `MultiDomainModel`) with one probability output
        per task.
    """
    cls = model_class(name)
    allowed = hyper_parameters(name)
    unknown = sorted(set(hyper_params) - set(allowed) - set(_BASE_PARAMETERS))
    if unknown:
        raise ValueError(
            f"Model {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}{did_you_mean(unknown, allowed)}; "
            f"its hyper-parameters are: {', '.join(sorted(allowed))}"
        )
    if data is not None:
        features, domain = adapt(features, domain, data, what="training data")
    return cls(features=features, domain=domain, tasks=tasks, **hyper_params)
