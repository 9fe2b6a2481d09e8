"""TransformerBlock: the post-LN equation, causal and padding masks, adapters into a trained block."""

import os
import tempfile

import keras
import numpy as np
import pytest

from keras_mdr import layers
from keras_mdr.testing import run_layer_test

RNG = np.random.default_rng(0)
LENGTH, WIDTH, HEADS = 5, 8, 2


def _sequences(batch, length=LENGTH, width=WIDTH):
    x = RNG.normal(size=(batch, length, width)).astype("float32")
    lengths = RNG.integers(1, length + 1, batch)
    padding_mask = np.arange(length)[None, :] < lengths[:, None]
    return {"inputs": x, "padding_mask": padding_mask}


def _randomise(layer):
    for weight in layer.weights:
        weight.assign(RNG.normal(size=weight.shape, scale=0.5).astype("float32"))


def _layer_norm(x, norm):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * norm.gamma.numpy() + norm.beta.numpy()


def _dense(x, layer):
    return x @ layer.kernel.numpy() + layer.bias.numpy()


def reference_block(block, x, padding_mask, parallel=None):
    """The block's equation in numpy, head by head and query by query; `parallel` maps x -> Delta(x)."""
    host = block.host_layers()
    batch, length, width = x.shape
    size = width // block.num_heads
    q, k, v = (_dense(x, host[name]) for name in ("query", "key", "value"))
    attended = np.zeros_like(x)
    for b in range(batch):
        for i in range(length):
            allowed = [j for j in range(length) if padding_mask[b, j] and (not block.causal or j <= i)]
            for h in range(block.num_heads):
                cols = slice(h * size, (h + 1) * size)
                if not allowed:
                    continue
                logits = np.array([q[b, i, cols] @ k[b, j, cols] for j in allowed]) / np.sqrt(size)
                weights = np.exp(logits - logits.max())
                weights /= weights.sum()
                attended[b, i, cols] = sum(w * v[b, j, cols] for w, j in zip(weights, allowed))
    total = x + _dense(attended, host["attention_output"])
    if parallel is not None:
        total = total + block.parallel_scale * parallel(x)
    h = _layer_norm(total, host["attention_norm"])
    inner = _dense(h, host["ffn_inner"])
    ffn = _dense(np.maximum(inner, 0.0), host["ffn_output"])
    return _layer_norm(h + ffn, host["ffn_norm"])


def test_block_equals_post_ln_equation_computed_head_by_head():
    for causal in (False, True):
        block = layers.TransformerBlock(HEADS, causal=causal)
        args = _sequences(6)
        args["padding_mask"][0] = False  # an all-padding row
        block(**args)
        _randomise(block)
        expected = reference_block(block, args["inputs"], args["padding_mask"])
        np.testing.assert_allclose(np.asarray(block(**args)), expected, atol=1e-5, rtol=1e-5, err_msg=f"{causal=}")


def test_block_with_every_adapter_site_and_lora_passes_layer_test():
    rule = layers.PHMRule(2)
    run_layer_test(
        layers.TransformerBlock,
        dict(
            num_heads=HEADS,
            intermediate_dim=12,
            causal=True,
            attention_adapter=layers.CompacterAdapter(4, phm_dim=2, rule=rule),
            ffn_adapter=layers.CompacterAdapter(4, phm_dim=2, rule=rule),
            parallel_attention_adapter=layers.ParallelAdapter(3),
            parallel_ffn_adapter=layers.BottleneckAdapter(3),
            lora_rank=2,
        ),
        _sequences,
        expected_output_shape=(8, LENGTH, WIDTH),
        # host 16 less query and value (frozen under LoRA), LoRA 2 x 2, one shared rule, Compacter 2 x 6,
        # bottlenecks 2 x 4
        expected_num_trainable_weights=12 + 4 + 1 + 12 + 8,
    )


def test_causal_mask_changing_a_future_position_does_not_change_earlier_outputs():
    block = layers.TransformerBlock(HEADS, causal=True)
    args = _sequences(4)
    args["padding_mask"][:] = True
    before = np.asarray(block(**args))
    changed = dict(args, inputs=args["inputs"].copy())
    changed["inputs"][:, 3] += 5.0
    after = np.asarray(block(**changed))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-6)
    assert np.abs(after[:, 3:] - before[:, 3:]).max() > 1e-3  # the changed position and later ones do move


def test_padding_positions_do_not_influence_valid_ones():
    block = layers.TransformerBlock(HEADS)
    args = _sequences(4)
    args["padding_mask"][:] = np.arange(LENGTH) < 3
    before = np.asarray(block(**args))
    changed = dict(args, inputs=args["inputs"].copy())
    changed["inputs"][:, 3:] = RNG.normal(size=(4, LENGTH - 3, WIDTH)) * 10
    after = np.asarray(block(**changed))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-6)


def test_all_padding_rows_give_finite_outputs_and_gradients():
    import tensorflow as tf

    block = layers.TransformerBlock(HEADS, causal=True)
    x = tf.constant(_sequences(3)["inputs"])
    padding_mask = np.zeros((3, LENGTH), bool)
    padding_mask[1, :2] = True
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = block(x, padding_mask=padding_mask, training=True)
        loss = tf.reduce_sum(tf.square(y))
    grads = tape.gradient(loss, [x] + block.trainable_variables)
    assert np.isfinite(y.numpy()).all()
    assert all(np.isfinite(g.numpy()).all() for g in grads)


def test_with_adapters_keeps_the_trained_weights_and_leaves_the_block_untouched():
    block = layers.TransformerBlock(HEADS)
    args = _sequences(4)
    block(**args)
    _randomise(block)
    before = [w.numpy().copy() for w in block.weights]
    adapted = block.with_adapters(ffn_adapter=layers.BottleneckAdapter(3), lora_rank=2)
    for name, layer in adapted.host_layers().items():
        for new, old in zip(layer.weights, block.host_layers()[name].weights):
            np.testing.assert_array_equal(new.numpy(), old.numpy(), err_msg=name)
    for weight, value in zip(block.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert block.ffn_adapter is None and not isinstance(block.query, layers.LoRADense)
    np.testing.assert_allclose(np.asarray(adapted(**args)), np.asarray(block(**args)), atol=1e-6)


def test_adapted_block_swaps_into_a_trained_functional_model_with_clone_model():
    inputs = keras.Input((LENGTH, WIDTH))
    outputs = keras.layers.Dense(1)(layers.TransformerBlock(HEADS, causal=True, name="block")(inputs))
    model = keras.Model(inputs, outputs)
    x = _sequences(4)["inputs"]
    adapted = keras.models.clone_model(
        model,
        clone_function=lambda layer: (
            layers.add_houlsby_adapters(layer, bottleneck=3) if isinstance(layer, layers.TransformerBlock) else layer
        ),
    )
    np.testing.assert_allclose(adapted.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert adapted.get_layer("block").ffn_adapter is not None


def test_frozen_block_keeps_its_trainable_set_through_keras_round_trip():
    block = layers.TransformerBlock(HEADS, name="block")
    args = _sequences(4)
    block(**args)
    adapted = block.with_adapters(attention_adapter=layers.BottleneckAdapter(3), trainable_norms=True)
    inputs = keras.Input((LENGTH, WIDTH))
    model = keras.Model(inputs, adapted(inputs))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)

    def trainable(m):  # the last three parts of a path: a sublayer built at load time has no "block/" prefix
        return sorted("/".join(w.path.split("/")[-3:]) for w in m.trainable_weights)

    assert trainable(loaded) == trainable(model)
    assert {path.split("/")[-2] for path in trainable(model)} == {"down", "up", "attention_norm", "ffn_norm"}
    np.testing.assert_allclose(loaded.predict(args["inputs"], verbose=0), model.predict(args["inputs"], verbose=0))


def test_invalid_arguments_name_the_argument_and_value():
    for kwargs, message in [
        (dict(num_heads=0), "num_heads must be an integer >= 1, got 0"),
        (dict(num_heads=2, dropout=1.0), "dropout must be in"),
        (dict(num_heads=2, lora_rank=2, lora_targets=("query", "gate")), "lora_targets must be among"),
        (dict(num_heads=2, ffn_adapter="bottleneck"), "ffn_adapter must be a keras Layer"),
        (dict(num_heads=3), "divisible by num_heads=3"),
    ]:
        with pytest.raises(ValueError, match=message):
            layers.TransformerBlock(**kwargs)(np.ones((1, 2, WIDTH), "float32"))


def test_with_adapters_on_an_unbuilt_block_is_a_clear_error():
    with pytest.raises(ValueError, match="call the block"):
        layers.TransformerBlock(HEADS).with_adapters(ffn_adapter=layers.BottleneckAdapter(2))
