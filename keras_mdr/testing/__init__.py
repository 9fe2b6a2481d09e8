"""Test helpers shared by keras_mdr's tests (and by tests of user layers)."""

from keras_mdr.testing.test_case import (
    assert_allclose,
    assert_batch_independent,
    run_layer_test,
    run_model_test,
    tiny_synthetic,
    xla_train_step,
)
