"""Parameter-efficient adapters (Adapter4Rec): identity at init, equations, LoRA merge, freezing."""

import keras
import numpy as np
import pytest

from keras_mdr import layers
from keras_mdr.testing import run_layer_test

RNG = np.random.default_rng(0)
LENGTH, WIDTH, HEADS = 4, 8, 2


def _sequences(batch):
    x = RNG.normal(size=(batch, LENGTH, WIDTH)).astype("float32")
    lengths = RNG.integers(1, LENGTH + 1, batch)
    return {"inputs": x, "padding_mask": np.arange(LENGTH)[None, :] < lengths[:, None]}


def _vectors(batch):
    return {"inputs": RNG.normal(size=(batch, WIDTH)).astype("float32")}


def _randomise(layer):
    for weight in layer.weights:
        weight.assign(RNG.normal(size=weight.shape, scale=0.5).astype("float32"))


def _trained_block(causal=True):
    """A block with random (not initial) weights, standing in for a trained one."""
    block = layers.TransformerBlock(HEADS, causal=causal, name="block")
    block(**_sequences(2))
    _randomise(block)
    return block


ADAPTER_SITES = {
    "houlsby_attention": lambda: dict(attention_adapter=layers.BottleneckAdapter(3)),
    "houlsby_ffn": lambda: dict(ffn_adapter=layers.BottleneckAdapter(3)),
    "parallel_attention": lambda: dict(parallel_attention_adapter=layers.ParallelAdapter(3)),
    "parallel_ffn": lambda: dict(parallel_ffn_adapter=layers.ParallelAdapter(3), parallel_scale=4.0),
    "lora_query_value": lambda: dict(lora_rank=2, lora_alpha=4.0),
    "lora_every_projection": lambda: dict(lora_rank=2, lora_targets=("query", "key", "value", "attention_output")),
}


@pytest.mark.parametrize("site", sorted(ADAPTER_SITES))
def test_block_with_adapter_equals_trained_block_at_init(site):
    block = _trained_block()
    args = _sequences(6)
    adapted = block.with_adapters(**ADAPTER_SITES[site]())
    np.testing.assert_allclose(np.asarray(adapted(**args)), np.asarray(block(**args)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("placement", [layers.add_houlsby_adapters, layers.add_pfeiffer_adapters])
def test_placement_helpers_start_as_the_trained_block(placement):
    block = _trained_block()
    args = _sequences(6)
    adapted = placement(block, bottleneck=3)
    np.testing.assert_allclose(np.asarray(adapted(**args)), np.asarray(block(**args)), atol=1e-6, rtol=0)
    sites = {name for name in adapted.adapter_layers()}
    expected = {"attention_adapter", "ffn_adapter"} if placement is layers.add_houlsby_adapters else {"ffn_adapter"}
    assert sites == expected


@pytest.mark.parametrize("site", sorted(ADAPTER_SITES))
def test_freezing_leaves_exactly_the_adapter_weights_trainable(site):
    adapted = _trained_block().with_adapters(**ADAPTER_SITES[site]())
    adapter_weights = {id(w) for layer in adapted.adapter_layers().values() for w in layer.weights}
    lora_bases = {id(w) for layer in adapted.adapter_layers().values() if isinstance(layer, layers.LoRADense)
                  for w in layer.base.weights}
    assert {id(w) for w in adapted.trainable_weights} == adapter_weights - lora_bases
    assert adapted.trainable_weights


def test_bottleneck_adapter_equals_its_equation_and_applies_dropout_inside():
    adapter = layers.BottleneckAdapter(3, dropout=0.5)
    x = _vectors(16)["inputs"]
    adapter(x)
    _randomise(adapter)
    hidden = np.maximum(x @ adapter.down.kernel.numpy() + adapter.down.bias.numpy(), 0.0)
    expected = x + hidden @ adapter.up.kernel.numpy() + adapter.up.bias.numpy()
    np.testing.assert_allclose(np.asarray(adapter(x)), expected, atol=1e-5, rtol=1e-5)
    trained = np.asarray(adapter(x, training=True))
    assert np.abs(trained - expected).max() > 1e-3, "dropout did not act in training"


def test_parallel_adapter_is_the_branch_alone_and_the_host_adds_it_once():
    from test_transformer_block import reference_block

    block = _trained_block(causal=False)
    branch = layers.ParallelAdapter(3)
    adapted = block.with_adapters(parallel_attention_adapter=branch, parallel_scale=2.0)
    args = _sequences(4)
    adapted(**args)
    _randomise(branch)
    x = args["inputs"]
    hidden = np.maximum(x @ branch.down.kernel.numpy() + branch.down.bias.numpy(), 0.0)
    delta = hidden @ branch.up.kernel.numpy() + branch.up.bias.numpy()
    np.testing.assert_allclose(np.asarray(branch(x)), delta, atol=1e-5, rtol=1e-5)
    expected = reference_block(adapted, x, args["padding_mask"], parallel=lambda _: delta)
    np.testing.assert_allclose(np.asarray(adapted(**args)), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "layer_cls, kwargs",
    [(layers.BottleneckAdapter, dict(bottleneck=3, dropout=0.1)), (layers.ParallelAdapter, dict(bottleneck=3))],
)
def test_bottleneck_adapters_pass_layer_test(layer_cls, kwargs):
    run_layer_test(layer_cls, kwargs, _vectors, expected_output_shape=(8, WIDTH), expected_num_trainable_weights=4)


def _trained_dense(units=6, activation="relu"):
    dense = keras.layers.Dense(units, activation=activation, name="trained")
    dense.build((None, WIDTH))
    _randomise(dense)
    return dense


def test_lora_dense_passes_layer_test():
    run_layer_test(
        layers.LoRADense,
        dict(base=_trained_dense(), rank=2, alpha=4.0, dropout=0.1),
        _vectors,
        expected_output_shape=(8, 6),
        expected_num_trainable_weights=2,
    )


def test_lora_keeps_the_trained_kernel_object_frozen_and_unchanged_by_training():
    import tensorflow as tf

    dense = _trained_dense()
    kernel, trained = dense.kernel, dense.kernel.numpy().copy()
    lora = layers.LoRADense(dense, rank=2)
    x = _vectors(16)["inputs"]
    np.testing.assert_allclose(np.asarray(lora(x)), np.asarray(dense(x)), atol=1e-6)  # B = 0: identity at init
    assert lora.base is dense and lora.base.kernel is kernel
    assert not dense.trainable and {id(w) for w in lora.trainable_weights} == {id(lora.lora_a), id(lora.lora_b)}
    optimizer = keras.optimizers.SGD(0.1)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(lora(x) - 1.0))
        optimizer.apply(tape.gradient(loss, lora.trainable_variables), lora.trainable_variables)
    np.testing.assert_array_equal(kernel.numpy(), trained)
    assert np.abs(lora.lora_b.numpy()).max() > 0, "B did not train"


@pytest.mark.parametrize("activation", [None, "relu"])
def test_lora_merge_predicts_what_the_unmerged_layer_does(activation):
    lora = layers.LoRADense(_trained_dense(activation=activation), rank=2, alpha=3.0)
    x = _vectors(32)["inputs"]
    lora(x)
    _randomise_factors(lora)
    merged = lora.merge()
    assert type(merged) is keras.layers.Dense
    np.testing.assert_allclose(np.asarray(merged(x)), np.asarray(lora(x)), atol=1e-5, rtol=1e-5)
    w0 = lora.base.kernel.numpy()
    np.testing.assert_allclose(merged.kernel.numpy(), w0 + 1.5 * lora.lora_a.numpy() @ lora.lora_b.numpy(), atol=1e-6)


def _randomise_factors(lora):
    lora.lora_a.assign(RNG.normal(size=lora.lora_a.shape).astype("float32"))
    lora.lora_b.assign(RNG.normal(size=lora.lora_b.shape).astype("float32"))


def test_block_merge_lora_predicts_what_the_lora_block_does_with_plain_dense_projections():
    adapted = _trained_block().with_adapters(lora_rank=2, ffn_adapter=layers.BottleneckAdapter(3))
    args = _sequences(6)
    adapted(**args)
    for name in ("query", "value"):
        _randomise_factors(getattr(adapted, name))
    merged = adapted.merge_lora()
    assert not merged.adapter_layers().keys() & {"query", "value"}
    assert all(type(merged.host_layers()[name]) is keras.layers.Dense for name in ("query", "value"))
    np.testing.assert_allclose(np.asarray(merged(**args)), np.asarray(adapted(**args)), atol=1e-5, rtol=1e-5)


def test_routed_low_rank_delta_equals_a_loop_over_groups():
    groups, rank, out = 3, 2, 5
    x = RNG.normal(size=(40, WIDTH)).astype("float32")
    group_ids = RNG.integers(0, groups, 40).astype("int32")
    a = RNG.normal(size=(groups, WIDTH, rank)).astype("float32")
    b = RNG.normal(size=(groups, rank, out)).astype("float32")
    expected = np.stack([0.5 * x[i] @ a[g] @ b[g] for i, g in enumerate(group_ids)])
    actual = layers.low_rank_delta(x, a, b, 0.5, group_ids=group_ids, tile_size=4)
    np.testing.assert_allclose(np.asarray(actual), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(layers.low_rank_delta(x, a[0], b[0], 0.5)), 0.5 * x @ a[0] @ b[0], atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.BottleneckAdapter(0), "bottleneck"),
        (lambda: layers.BottleneckAdapter(2, dropout=-0.1), "dropout"),
        (lambda: layers.LoRADense(keras.layers.Dense(2), rank=0), "rank"),
        (lambda: layers.LoRADense(keras.layers.Dense(2), rank=2, alpha=0), "alpha"),
        (lambda: layers.LoRADense(keras.layers.EinsumDense("ab,bc->ac", 2), rank=2), "keras.layers.Dense"),
        (lambda: layers.LoRADense(keras.layers.Dense(2, lora_rank=2), rank=2), "own LoRA"),
    ],
)
def test_invalid_arguments_name_the_argument_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()
