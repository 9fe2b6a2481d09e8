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


def _trained_block(causal=True, name="block"):
    """A block with random (not initial) weights, standing in for a trained one."""
    block = layers.TransformerBlock(HEADS, causal=causal, name=name)
    block(**_sequences(2))
    _randomise(block)
    return block


def _shared_rule_compacters():
    rule = layers.PHMRule(2)
    return dict(
        attention_adapter=layers.CompacterAdapter(4, phm_dim=2, rule=rule),
        ffn_adapter=layers.CompacterAdapter(4, phm_dim=2, phm_rank=2, rule=rule),
    )


ADAPTER_SITES = {
    "houlsby_attention": lambda: dict(attention_adapter=layers.BottleneckAdapter(3)),
    "houlsby_ffn": lambda: dict(ffn_adapter=layers.BottleneckAdapter(3)),
    "parallel_attention": lambda: dict(parallel_attention_adapter=layers.ParallelAdapter(3)),
    "parallel_ffn": lambda: dict(parallel_ffn_adapter=layers.ParallelAdapter(3), parallel_scale=4.0),
    "lora_query_value": lambda: dict(lora_rank=2, lora_alpha=4.0),
    "lora_every_projection": lambda: dict(lora_rank=2, lora_targets=("query", "key", "value", "attention_output")),
    "compacter_houlsby": _shared_rule_compacters,
}


def test_block_with_an_adapter_at_any_site_equals_the_trained_block_at_init():
    block = _trained_block()
    args = _sequences(6)
    expected = np.asarray(block(**args))
    for site, make in ADAPTER_SITES.items():
        adapted = block.with_adapters(**make())
        np.testing.assert_allclose(np.asarray(adapted(**args)), expected, atol=1e-6, rtol=0, err_msg=site)
    for placement, sites in [
        (layers.add_houlsby_adapters, {"attention_adapter", "ffn_adapter"}),
        (layers.add_pfeiffer_adapters, {"ffn_adapter"}),
    ]:
        adapted = placement(block, bottleneck=3)
        np.testing.assert_allclose(np.asarray(adapted(**args)), expected, atol=1e-6, rtol=0)
        assert set(adapted.adapter_layers()) == sites


def test_freezing_leaves_exactly_the_adapter_weights_trainable():
    block = _trained_block()
    for site, make in ADAPTER_SITES.items():
        adapted = block.with_adapters(**make())
        adapters = adapted.adapter_layers().values()
        adapter_weights = {id(w) for layer in adapters for w in layer.weights}
        lora_bases = {id(w) for layer in adapters if isinstance(layer, layers.LoRADense) for w in layer.base.weights}
        assert {id(w) for w in adapted.trainable_weights} == adapter_weights - lora_bases, site
        assert adapted.trainable_weights, site
    assert {id(w) for w in block.trainable_weights} == {id(w) for w in block.weights}, "the source block changed"


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
        (lambda: layers.CompacterAdapter(3, phm_dim=2), "bottleneck must be divisible by phm_dim=2, got 3"),
        (lambda: layers.CompacterAdapter(4, phm_dim=2, rule=layers.PHMRule(4)), "rule must be a PHMRule"),
        (lambda: layers.PHMDense(4, phm_dim=3), "units must be divisible by phm_dim=3, got 4"),
        (lambda: layers.PHMDense(4, phm_dim=4)(np.ones((1, 6), "float32")), "divisible by phm_dim=4"),
        (lambda: layers.KAdapter(3, num_heads=2), "bottleneck must be divisible by num_heads=2, got 3"),
        (lambda: layers.KAdapter(4, num_heads=2, num_layers=2)(np.ones((1, 2, 4), "float32")), "num_layers=2"),
        (lambda: layers.SoftPrompt(0), "num_prompts must be an integer >= 1, got 0"),
    ],
)
def test_invalid_arguments_name_the_argument_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_phm_kernel_equals_an_explicit_kronecker_sum():
    n, a, b, k = 2, 3, 2, 2
    rules = RNG.normal(size=(n, n, n)).astype("float32")
    left, right = RNG.normal(size=(n, a, k)).astype("float32"), RNG.normal(size=(n, k, b)).astype("float32")
    expected = sum(np.kron(rules[i], left[i] @ right[i]) for i in range(n))
    np.testing.assert_allclose(np.asarray(layers.phm_kernel(rules, left, right)), expected, atol=1e-5, rtol=1e-5)


def test_compacter_adapter_equals_its_equation_with_the_skip_path():
    rule = layers.PHMRule(2)
    adapter = layers.CompacterAdapter(4, phm_dim=2, rule=rule)
    x = _vectors(10)["inputs"]
    np.testing.assert_allclose(np.asarray(adapter(x)), x, atol=1e-6)  # H_u = 0 at init
    _randomise(adapter)

    def kronecker_sum(phm):
        n = rule.phm_dim
        return sum(np.kron(rule.rules.numpy()[i], phm.left.numpy()[i] @ phm.right.numpy()[i]) for i in range(n))

    hidden = np.maximum(x @ kronecker_sum(adapter.down) + adapter.down.bias.numpy(), 0.0)
    expected = x + hidden @ kronecker_sum(adapter.up) + adapter.up.bias.numpy()
    np.testing.assert_allclose(np.asarray(adapter(x)), expected, atol=1e-4, rtol=1e-4)


def test_compacter_rules_stay_one_shared_variable_through_keras_round_trip():
    import os
    import tempfile

    rule = layers.PHMRule(2)
    sequences = keras.Input((LENGTH, WIDTH))
    hidden = sequences
    for i in range(2):
        block = _trained_block(name=f"block_{i}")
        hidden = layers.add_houlsby_adapters(
            block, make_adapter=lambda: layers.CompacterAdapter(4, phm_dim=2, rule=rule)
        )(hidden)
    adapted = keras.Model(sequences, hidden)
    _randomise(rule)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "compacter.keras")
        adapted.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    blocks = [layer for layer in loaded.layers if isinstance(layer, layers.TransformerBlock)]
    rules = {id(adapter.rule) for b in blocks for adapter in (b.attention_adapter, b.ffn_adapter)}
    rules |= {id(b.ffn_adapter.up.rule) for b in blocks}
    assert len(blocks) == 2 and len(rules) == 1
    x = _sequences(3)["inputs"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), adapted.predict(x, verbose=0), atol=1e-6)


def _host_stack(causal, num_layers=2):
    """Hidden states of a (random) host stack: a list of `[B, L, d]`, lowest first."""
    blocks = [layers.TransformerBlock(HEADS, causal=causal) for _ in range(num_layers)]

    def run(inputs, padding_mask):
        states, x = [], inputs
        for block in blocks:
            x = block(x, padding_mask=padding_mask)
            states.append(x)
        return states

    return run


def test_k_adapter_is_the_identity_of_the_host_at_init():
    args = _sequences(5)
    states = _host_stack(causal=True)(**args)
    adapter = layers.KAdapter(4, HEADS, num_layers=2, causal=True)
    np.testing.assert_allclose(np.asarray(adapter(states, padding_mask=args["padding_mask"])), states[-1], atol=1e-6)


def test_k_adapter_honours_the_hosts_causal_and_padding_masks():
    host = _host_stack(causal=True)
    adapter = layers.KAdapter(4, HEADS, num_layers=2, causal=True)
    args = _sequences(4)
    args["padding_mask"][:] = np.arange(LENGTH) < 3
    adapter(host(**args), padding_mask=args["padding_mask"])
    _randomise(adapter)  # a trained adapter: U no longer zero

    def adapted(inputs):
        return np.asarray(adapter(host(inputs, args["padding_mask"]), padding_mask=args["padding_mask"]))

    before = adapted(args["inputs"])
    future = args["inputs"].copy()
    future[:, 1] += 3.0  # a later, valid position
    after = adapted(future)
    np.testing.assert_allclose(after[:, :1], before[:, :1], atol=1e-5)
    assert np.abs(after[:, 1:3] - before[:, 1:3]).max() > 1e-3
    padded = args["inputs"].copy()
    padded[:, 3:] = RNG.normal(size=(4, LENGTH - 3, WIDTH)) * 10  # padding positions
    np.testing.assert_allclose(adapted(padded)[:, :3], before[:, :3], atol=1e-5)


def test_soft_prompt_prepends_vectors_extends_the_mask_and_keeps_the_inputs():
    prompt = layers.SoftPrompt(2)
    args = _sequences(4)
    tokens, mask = prompt(**args)
    assert tuple(tokens.shape) == (4, LENGTH + 2, WIDTH) and tuple(mask.shape) == (4, LENGTH + 2)
    np.testing.assert_array_equal(np.asarray(mask), np.concatenate([np.ones((4, 2), bool), args["padding_mask"]], 1))
    np.testing.assert_array_equal(np.asarray(prompt.strip(tokens)), args["inputs"])
    np.testing.assert_array_equal(np.asarray(tokens)[:, :2], np.broadcast_to(prompt.prompts.numpy(), (4, 2, WIDTH)))
    _, full = prompt(args["inputs"])
    assert np.asarray(full).all()
    # In a causal host, every real position attends to the prompts, and padded ones stay masked.
    block = layers.TransformerBlock(HEADS, causal=True)
    before = np.asarray(prompt.strip(block(tokens, padding_mask=mask)))
    padded = args["inputs"].copy()
    padded[~args["padding_mask"]] = 100.0
    changed = np.asarray(prompt.strip(block(prompt(padded, args["padding_mask"])[0], padding_mask=mask)))
    valid = args["padding_mask"]
    np.testing.assert_allclose(changed[valid], before[valid], atol=1e-5)
    prompt.prompts.assign(prompt.prompts.numpy() + 1.0)
    moved = np.asarray(prompt.strip(block(*prompt(**args))))
    assert np.abs(moved[:, 0] - before[:, 0]).max() > 1e-3, "the first position does not see the prompts"


@pytest.mark.parametrize(
    "layer_cls, kwargs, make_inputs, shape, num_trainable",
    [
        (layers.BottleneckAdapter, dict(bottleneck=3, dropout=0.1), _vectors, (8, WIDTH), 4),
        (layers.ParallelAdapter, dict(bottleneck=3), _vectors, (8, WIDTH), 4),
        (layers.CompacterAdapter, dict(bottleneck=4, phm_dim=2, phm_rank=2), _vectors, (8, WIDTH), 7),
        (layers.PHMDense, dict(units=6, phm_dim=2), _vectors, (8, 6), 4),
        (layers.SoftPrompt, dict(num_prompts=2), _sequences, ((8, LENGTH + 2, WIDTH), (8, LENGTH + 2)), 1),
    ],
)
def test_adapter_layers_pass_layer_test(layer_cls, kwargs, make_inputs, shape, num_trainable):
    run_layer_test(layer_cls, kwargs, make_inputs, expected_output_shape=shape,
                   expected_num_trainable_weights=num_trainable)


def test_k_adapter_passes_layer_test():
    def hidden_states(batch):
        args = _sequences(batch)
        return {"hidden_states": args["inputs"], "padding_mask": args["padding_mask"]}

    run_layer_test(
        layers.KAdapter,
        dict(bottleneck=4, num_heads=HEADS, blocks_per_layer=1, causal=True),
        hidden_states,
        expected_output_shape=(8, LENGTH, WIDTH),
        expected_num_trainable_weights=2 + 16 + 2,
        run_training=False,  # its blocks are TransformerBlocks, trained under XLA in their own layer test
    )


def test_readme_adapters_example_runs():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    snippet = re.search(r"<!-- adapters-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(snippet, "README.md (adapters example)", "exec"), {})
