"""Which rows of an embedding table each optimizer updates; LazyAdam against a per-row numpy Adam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr.optimizers import LazyAdam
from keras_mdr.testing import tiny_synthetic

ROWS, DIM = 10, 3
# Repeated indices in every batch; rows 4, 5, 6 and 8 are never looked up.
BATCHES = [[1, 3, 3, 7], [3, 0, 0, 0], [9, 1, 9, 2]]


def _embedding_steps(optimizer, batches, seed=0):
    """Trains a `ROWS x DIM` embedding table on `sum(w * lookups)` with random `w`, one XLA step per batch.

    Returns the table before and after, and the types of the gradients the optimizer received.
    """
    rng = np.random.default_rng(seed)
    table = keras.layers.Embedding(ROWS, DIM, embeddings_initializer=keras.initializers.RandomUniform(seed=seed))
    table.build((None,))
    before = table.embeddings.numpy().copy()
    optimizer.build(table.trainable_variables)
    received = []

    @tf.function(jit_compile=True)
    def step(ids, weights):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(weights * table(ids))
        gradients = tape.gradient(loss, table.trainable_variables)
        received.extend(type(g).__name__ for g in gradients)
        optimizer.apply(gradients, table.trainable_variables)

    for ids in batches:
        step(tf.constant(ids, tf.int32), tf.constant(rng.normal(size=(len(ids), DIM)), tf.float32))
    return before, table.embeddings.numpy(), received


def _numpy_lazy_adam(table, batches, learning_rate, amsgrad, seed=0, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """A loop over the distinct rows of each batch, each row's slices summed first (float64)."""
    rng = np.random.default_rng(seed)
    w = table.astype(np.float64)
    m, v, v_hat = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for step, ids in enumerate(batches, start=1):
        weights = rng.normal(size=(len(ids), DIM)).astype(np.float32)
        alpha = learning_rate * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        ids = np.asarray(ids)
        for row in np.unique(ids):
            g = weights[ids == row].sum(axis=0)
            m[row] += (g - m[row]) * (1 - beta_1)
            v[row] += (g**2 - v[row]) * (1 - beta_2)
            v_hat[row] = np.maximum(v_hat[row], v[row])
            w[row] -= alpha * m[row] / (np.sqrt(v_hat[row] if amsgrad else v[row]) + epsilon)
    return w


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_lazy_adam_equals_a_per_row_numpy_lazy_adam_with_repeated_indices(amsgrad):
    before, after, received = _embedding_steps(LazyAdam(0.1, amsgrad=amsgrad), BATCHES)
    assert set(received) == {"IndexedSlices"}, "the embedding's gradient must reach the optimizer sparse"
    np.testing.assert_allclose(after, _numpy_lazy_adam(before, BATCHES, 0.1, amsgrad), atol=1e-6, rtol=1e-5)


ABSENT = [4, 5, 6, 8]
SPARSE_OPTIMIZERS = {
    "lazy_adam": lambda: LazyAdam(0.1),
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "adagrad": lambda: km.optimizers.SparseAdagrad(0.1),
}


@pytest.mark.parametrize("name", list(SPARSE_OPTIMIZERS))
def test_rows_absent_from_every_batch_stay_bit_identical(name):
    # The first batch touches every row, so that Adam's moments are non-zero everywhere afterwards.
    _, after, _ = _embedding_steps(SPARSE_OPTIMIZERS[name](), [list(range(ROWS))] + BATCHES)
    _, middle, _ = _embedding_steps(SPARSE_OPTIMIZERS[name](), [list(range(ROWS))])
    np.testing.assert_array_equal(after[ABSENT], middle[ABSENT])
    assert not np.array_equal(after[[0, 1, 3]], middle[[0, 1, 3]]), "the rows of the batches must move"


def _numpy_adagrad(table, batches, learning_rate, seed=0, initial=0.1, epsilon=1e-7):
    """Dense Adagrad on each batch's gradient, repeated rows summed (float64)."""
    rng = np.random.default_rng(seed)
    w = table.astype(np.float64)
    accumulator = np.full_like(w, initial)
    for ids in batches:
        weights = rng.normal(size=(len(ids), DIM)).astype(np.float32)
        g = np.zeros_like(w)
        np.add.at(g, np.asarray(ids), weights)
        accumulator += g**2
        w -= learning_rate * g / np.sqrt(accumulator + epsilon)
    return w


def test_sparse_adagrad_is_dense_adagrad_on_each_rows_summed_gradient_under_xla():
    before, after, received = _embedding_steps(km.optimizers.SparseAdagrad(0.1), BATCHES)
    assert set(received) == {"IndexedSlices"}
    np.testing.assert_allclose(after, _numpy_adagrad(before, BATCHES, 0.1), atol=1e-6, rtol=1e-5)


def test_keras_adam_moves_rows_absent_from_the_batch():
    # What LazyAdam avoids, and why the test above can fail.
    _, after, received = _embedding_steps(keras.optimizers.Adam(0.1), [list(range(ROWS))] + BATCHES)
    _, middle, _ = _embedding_steps(keras.optimizers.Adam(0.1), [list(range(ROWS))])
    assert set(received) == {"IndexedSlices"}
    assert np.all(after[ABSENT] != middle[ABSENT])


def test_lazy_adam_updates_dense_variables_exactly_as_keras_adam():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(4, 2)).astype(np.float32)
    gradients = [rng.normal(size=(4, 2)).astype(np.float32) for _ in range(3)]
    results = []
    for optimizer in (LazyAdam(0.1, amsgrad=True), keras.optimizers.Adam(0.1, amsgrad=True)):
        variable = keras.Variable(kernel)
        optimizer.build([variable])
        step = tf.function(lambda g: optimizer.apply([g], [variable]), jit_compile=True)  # noqa: B023
        for gradient in gradients:
            step(tf.constant(gradient))
        results.append(variable.numpy())
    np.testing.assert_array_equal(results[0], results[1])


def test_lazy_adam_config_round_trips():
    optimizer = LazyAdam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6, amsgrad=True, clipnorm=1.0)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is LazyAdam
    assert restored.get_config() == optimizer.get_config()


def test_a_zoo_model_trains_with_lazy_adam_under_xla_and_leaves_absent_users_rows_as_they_were(tmp_path):
    data = tiny_synthetic(600)
    model = km.build_model("mmoe", features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame,
                           num_experts=2, expert_units=[8], tower_units=[4])
    # An epoch on every user gives every row non-zero moments (Adam would move them all from then on);
    # then an epoch on the first 40 users only.
    km.training.train(model, data.frame, epochs=1, batch_size=64, optimizer="lazy_adam", verbose=0)
    assert model.jit_compile and isinstance(model.optimizer, LazyAdam)
    users = sorted(data.frame.user_id.unique())
    seen = data.frame[data.frame.user_id.isin(users[:40])]
    table = next(w for w in model.weights if "user_id_embedding" in w.path)
    before = table.numpy().copy()
    history = model.fit(seen, epochs=1, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"][-1])

    def rows(frame):
        x, _ = next(iter(model.make_dataset(frame, batch_size=len(frame))))
        return np.unique(x["user_id"].numpy())

    absent = np.setdiff1d(rows(data.frame), rows(seen))
    assert len(absent) >= 40
    after = table.numpy()
    np.testing.assert_array_equal(after[absent], before[absent])
    assert np.all(np.any(after[rows(seen)] != before[rows(seen)], axis=1))

    path = tmp_path / "model.keras"
    model.save(path)
    assert type(keras.saving.load_model(path, safe_mode=True).optimizer) is LazyAdam


def test_train_names_the_allowed_optimizers():
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'lazy_adam', 'adagrad', 'sgd'\], "
                                         r"got 'adamw'"):
        km.training.train(None, None, optimizer="adamw")


def test_lazy_adam_with_a_strategy_raises_instead_of_updating_every_row():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    data = tiny_synthetic(200)
    with strategy.scope():
        model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                               data=data.frame, bottom_units=[4], tower_units=[2])
    with pytest.raises(ValueError, match="optimizer='lazy_adam'.*gradients dense"):
        km.training.train(model, data.frame, optimizer="lazy_adam", strategy=strategy)


def _table_and_dense(seed=0):
    """An embedding table and a dense layer on top of it: `sum(w * dense(table(ids)))`."""
    table = keras.layers.Embedding(ROWS, DIM, embeddings_initializer=keras.initializers.RandomUniform(seed=seed))
    dense = keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomUniform(seed=seed + 1))
    table.build((None,))
    dense.build((None, DIM))
    return table, dense


def _train_table_and_dense(optimizers, seed=0):
    """XLA steps over `BATCHES`; `optimizers` is one optimizer for both layers or a (table's, dense's) pair."""
    rng = np.random.default_rng(seed)
    table, dense = _table_and_dense(seed)
    variables = table.trainable_variables + dense.trainable_variables
    pairs = [(optimizers, variables)] if not isinstance(optimizers, tuple) else [
        (optimizers[0], table.trainable_variables), (optimizers[1], dense.trainable_variables)]
    for optimizer, owned in pairs:
        optimizer.build(owned)

    @tf.function(jit_compile=True)
    def step(ids, weights):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(weights * dense(table(ids)))
        gradients = dict(zip([id(v) for v in variables], tape.gradient(loss, variables)))
        for optimizer, owned in pairs:
            optimizer.apply([gradients[id(v)] for v in owned], owned)

    for ids in BATCHES:
        step(tf.constant(ids, tf.int32), tf.constant(rng.normal(size=(len(ids), 2)), tf.float32))
    return [v.numpy() for v in variables]


def test_split_optimizer_equals_the_table_optimizer_on_tables_and_the_other_on_the_rest():
    split = km.optimizers.SplitOptimizer(keras.optimizers.Adagrad(0.1), keras.optimizers.Adam(0.01))
    got = _train_table_and_dense(split)
    want = _train_table_and_dense((keras.optimizers.Adagrad(0.1), keras.optimizers.Adam(0.01)))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    # Adam on both would move the table differently: the split is not a no-op.
    assert not np.allclose(got[0], _train_table_and_dense(keras.optimizers.Adam(0.01))[0])
    assert int(split.iterations) == int(split.tables.iterations) == int(split.rest.iterations) == len(BATCHES)
    assert len(split.tables.variables) < len(split.rest.variables)  # each built on its own variables only


def test_split_optimizer_round_trips_its_config_and_sets_the_rests_learning_rate():
    split = km.optimizers.SplitOptimizer(keras.optimizers.SGD(0.5), LazyAdam(0.01, beta_1=0.8), name="split")
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(split))
    assert type(restored) is km.optimizers.SplitOptimizer
    assert type(restored.tables) is keras.optimizers.SGD and type(restored.rest) is LazyAdam
    assert restored.get_config() == split.get_config()
    restored.learning_rate = 0.001
    assert np.isclose(float(restored.rest.learning_rate), 0.001)
    assert np.isclose(float(restored.tables.learning_rate), 0.5)
    with pytest.raises(ValueError, match="takes no clipnorm: set it on its `tables` or `rest`"):
        km.optimizers.SplitOptimizer(keras.optimizers.SGD(), keras.optimizers.Adam(), clipnorm=1.0)


def test_train_with_adagrad_tables_and_adam_towers_leaves_absent_rows_and_saves(tmp_path):
    data = tiny_synthetic(400)
    model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, bottom_units=[8], tower_units=[4])
    users = sorted(data.frame.user_id.unique())
    seen = data.frame[data.frame.user_id.isin(users[:30])]
    table = next(w for w in model.weights if "user_id_embedding" in w.path)
    before = table.numpy().copy()
    km.training.train(model, seen, epochs=1, batch_size=64, optimizer="adam", table_optimizer="adagrad",
                      table_learning_rate=0.05, verbose=0)
    split = model.optimizer
    assert model.jit_compile and type(split.tables) is km.optimizers.SparseAdagrad
    assert type(split.rest) is keras.optimizers.Adam and np.isclose(float(split.tables.learning_rate), 0.05)
    assert all(v.path.endswith("embeddings") for v in split.tables._trainable_variables)

    x, _ = next(iter(model.make_dataset(data.frame, batch_size=len(data.frame))))
    rows = np.unique(x["user_id"].numpy())
    x_seen, _ = next(iter(model.make_dataset(seen, batch_size=len(seen))))
    absent = np.setdiff1d(rows, x_seen["user_id"].numpy())
    np.testing.assert_array_equal(table.numpy()[absent], before[absent])

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored.optimizer) is km.optimizers.SplitOptimizer
    assert len(restored.optimizer.variables) == len(model.optimizer.variables) > 4
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))


def test_train_names_the_allowed_table_optimizers():
    with pytest.raises(ValueError, match=r"table_optimizer must be one of \['adam', 'lazy_adam', 'adagrad', 'sgd'\]"
                                         r", got 'ftrl'"):
        km.training.train(None, None, table_optimizer="ftrl")
