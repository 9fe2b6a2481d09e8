"""The dtype policy a model's numeric core is built under (mixed precision).

Under `"mixed_bfloat16"` or `"mixed_float16"` the core's layers compute in
16 bits and keep their variables in float32; the preprocessing, the
probability outputs, the loss and the metrics stay float32.
"""

import contextlib

import keras

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def policy_name(policy=None):
    """The checked name of `policy`: a name in `POLICIES`, a `keras.DTypePolicy`, or `None` (Keras' global policy)."""
    if policy is None:
        policy = keras.config.dtype_policy()
    name = policy.name if isinstance(policy, keras.DTypePolicy) else policy
    if name not in POLICIES:
        raise ValueError(f"dtype_policy must be one of {POLICIES}, got {name!r}")
    return name


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Layers created inside take the dtype policy `policy` (a name), unless given their own `dtype`."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
