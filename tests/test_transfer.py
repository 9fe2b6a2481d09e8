"""keras_mdr.transfer: a new domain on a trained model, for every model of the zoo.

Source models know domains d0 and d1 of the tiny synthetic data; `add_domain`
brings d2. Models run eagerly on preprocessed batches (one training step each)
to keep the suite fast; one test trains under XLA through `fit`.
"""

import os

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr.features.preprocessing import DOMAIN_ID, Preprocessor
from keras_mdr.layers import DomainBottleneckAdapter, DomainLoRA, DomainNormalization, FeatureEmbedding
from keras_mdr.layers.adapters.domain_lora import HOSTS
from keras_mdr.testing import run_layer_test, tiny_synthetic
from keras_mdr.testing.serving_checks import tiny_hyper_parameters

DATA = tiny_synthetic(num_rows=400, seed=3)
SOURCE_DOMAIN = km.Domain("domain", values=["d0", "d1"])
FROZEN = ("adapter", "lora", "head")
RNG = np.random.default_rng(0)


def _rows(domains):
    return DATA.frame[DATA.frame.domain.isin(domains)].reset_index(drop=True)


OLD, NEW = _rows(["d0", "d1"]), _rows(["d2"])


FEATURES = km.adapt(DATA.features, SOURCE_DOMAIN, OLD)[0]  # as the source models learn them


def _batch(frame, domain):
    """`(core inputs, labels)` of `frame` in one batch, through a preprocessor for `domain`."""
    model_features = FEATURES
    inputs, labels = km.data.prepare_columns(frame, model_features, domain, DATA.tasks)
    preprocessor = Preprocessor(model_features, domain)
    core = preprocessor({k: tf.constant(v) for k, v in inputs.items()})
    return core, {k: tf.constant(v) for k, v in labels.items()}


def _predict(model, batch):
    return {task: np.asarray(values) for task, values in model(batch[0], training=False).items()}


def _train_step(model, batch, optimizer=None):
    model.compile(optimizer=optimizer or keras.optimizers.AdamW(0.05, weight_decay=0.1), run_eagerly=True)
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)


def _source(name):
    keras.utils.set_random_seed(1)
    model = km.build_model(
        name, features=DATA.features, domain=SOURCE_DOMAIN, tasks=DATA.tasks, data=OLD, **tiny_hyper_parameters(name)
    )
    _train_step(model, _batch(OLD, SOURCE_DOMAIN))  # non-trivial weights and measured moving statistics
    return model


SOURCES = {}


def _cached_source(name):
    """A source model per zoo model, shared by the tests (they never change it)."""
    if name not in SOURCES:
        SOURCES[name] = _source(name)
    return SOURCES[name]


@pytest.fixture(scope="module")
def batches():
    extended = km.Domain("domain", values=["d0", "d1", "d2"])
    return {"old": _batch(OLD, extended), "new": _batch(NEW, extended), "mixed": _batch(DATA.frame, extended)}


def _tables(model):
    """Paths of the embedding tables of the model's `FeatureEmbedding`s."""
    return {t.embeddings.path for l in model.layers if isinstance(l, FeatureEmbedding) for t in l.tables}


def _per_domain(source, model):
    """`{path: (source value, new value, axis, rows per domain)}` of the weights that grew with the domains."""
    grown = {}
    source_weights = {v.path: v for v in source.weights}
    tables = _tables(model)  # they grow with the new domain's ids, not with the domain count
    for variable in model.weights:
        old = source_weights.get(variable.path)
        if old is not None and tuple(old.shape) != tuple(variable.shape) and variable.path not in tables:
            axis = [a for a, (o, n) in enumerate(zip(old.shape, variable.shape)) if o != n][0]
            grown[variable.path] = (np.asarray(old), np.asarray(variable), axis, old.shape[axis] // 2)
    return grown


def _as_domain(core, domain_id):
    return dict(core, **{DOMAIN_ID: tf.fill(tf.shape(core[DOMAIN_ID]), domain_id)})


# Every model with adapters (starting from d1) and LoRA; head where layers keep state or balance over domains;
# fine-tuning once (it must move the old domains: the bit-for-bit check can fail).
TRANSFERS = [(n, m) for n in km.list_models() for m in ("adapter", "lora")]
TRANSFERS += [("star", "head"), ("adaptdhm", "head"), ("m3oe", "head"), ("mmoe", "finetune")]


@pytest.fixture(scope="module", params=[t for t in TRANSFERS if t[0] in km.list_models()], ids="-".join)
def transferred(request, batches):
    """A new model with d2, and what it computed right after `add_domain` (before any test trains it)."""
    name, method = request.param
    source = _cached_source(name)
    try:
        model = km.transfer.add_domain(source, "d2", data=NEW, method=method, init_from="d1")
    except ValueError as error:
        if method == "lora" and "no domain-shared dense layer" in str(error):
            pytest.skip(f"{name}: LoRA has nothing to wrap (test_lora_is_refused_... checks the refusal)")
        raise
    new_rows = batches["new"][0]
    if name == "m3oe":
        # Balance weight 1: each domain's view is its own expert, so d2 started from d1 must act as d1.
        balance = model.get_layer("fusion").structure_domain_balance
        kept = balance.numpy()
        balance.assign(30.0)
    as_d2, as_d1 = _predict(model, (new_rows,)), _predict(model, (_as_domain(new_rows, 1),))
    if name == "m3oe":
        balance.assign(kept)
    return {
        "source": source, "model": model, "grown": _per_domain(source, model),
        "source_old": _predict(source, batches["old"]), "old": _predict(model, batches["old"]),
        "new_as_d2": as_d2, "new_as_d1": as_d1,
    }


def test_add_domain_keeps_source_domains_predictions(transferred):
    for task, values in transferred["source_old"].items():
        np.testing.assert_allclose(transferred["old"][task], values, atol=1e-6, rtol=1e-6, err_msg=task)


def test_new_domain_starts_from_init_from_and_behaves_like_it(transferred):
    model, grown = transferred["model"], transferred["grown"]
    assert grown, "no per-domain weight grew"
    seen = {l.seen.path for l in model._flatten_layers() if isinstance(l, DomainNormalization)}
    for path, (old, new, axis, rows) in grown.items():
        new_rows = np.take(new, range(2 * rows, 3 * rows), axis=axis)
        expected = np.zeros_like(new_rows) if path in seen else np.take(old, range(rows, 2 * rows), axis=axis)
        np.testing.assert_array_equal(new_rows, expected, err_msg=path)
    # The same rows as d2 and as d1: equal predictions prove every per-domain table is domain-major.
    for task, values in transferred["new_as_d2"].items():
        np.testing.assert_allclose(values, transferred["new_as_d1"][task], atol=1e-6, err_msg=task)


def test_frozen_methods_keep_source_domains_bit_for_bit_after_training(transferred, batches):
    model, before = transferred["model"], transferred["old"]
    new_before = _predict(model, batches["new"])
    _train_step(model, batches["mixed"])  # old and new rows together; AdamW with weight decay
    after, new_after = _predict(model, batches["old"]), _predict(model, batches["new"])
    moved = max(float(np.max(np.abs(new_after[t] - new_before[t]))) for t in before)
    assert moved > 1e-4, "the new domain did not train"
    if model.transfer["method"] == "finetune":
        assert any(not np.array_equal(after[t], before[t]) for t in before), "finetune should move old domains"
    else:
        for task in before:
            np.testing.assert_array_equal(after[task], before[task], err_msg=f"{task}: a source domain moved")


@pytest.mark.parametrize("name", km.list_models())
def test_lora_is_refused_with_the_reason_where_no_shared_dense_layer_is_in_reach(name):
    source = _cached_source(name)
    if any(isinstance(layer, HOSTS) for layer in source.layers):
        pytest.skip(f"{name} has a layer LoRA wraps: its LoRA transfer is tested above")
    with pytest.raises(ValueError, match="no domain-shared dense layer .* use method='adapter'"):
        km.transfer.add_domain(source, "d2", data=NEW, method="lora")


def test_new_domain_starts_from_the_mean_over_domains():
    source = _cached_source("star")
    model = km.transfer.add_domain(source, "d2", data=NEW, method="finetune")
    for path, (old, new, axis, rows) in _per_domain(source, model).items():
        if path.endswith("seen"):
            continue
        mean = np.take(old, range(rows), axis=axis) / 2 + np.take(old, range(rows, 2 * rows), axis=axis) / 2
        np.testing.assert_allclose(np.take(new, range(2 * rows, 3 * rows), axis=axis), mean, atol=1e-7, err_msg=path)


@pytest.mark.parametrize("method", FROZEN + ("finetune",))
def test_each_method_trains_its_own_set_of_weights(method):
    source = _cached_source("hamur")
    model = km.transfer.add_domain(source, "d2", data=NEW, method=method)
    report = model.trainable_report(print_fn=lambda _: None)
    trainable = {v.path for v in model.trainable_weights}
    grown = set(_per_domain(source, model))
    source_trainable = {v.path for v in source.trainable_weights}
    inserted = {
        v.path for layer in model.layers if isinstance(layer, (DomainBottleneckAdapter, DomainLoRA))
        for v in layer.trainable_weights
    }
    if method == "finetune":
        assert trainable == source_trainable
        assert report["trainable"] == sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        return
    # The user table grew with d2's users (test_ids_first_seen_in_the_new_domain_...): only it of the tables.
    tables = {v.path: v for v in model.weights if v.path in _tables(model)}
    source_shapes = {v.path: tuple(v.shape) for v in source.weights}
    new_ids = {p for p, v in tables.items() if tuple(v.shape) != source_shapes[p]}
    assert new_ids and new_ids == {p for p in tables if "user_id" in p}
    assert trainable == (grown & source_trainable) | inserted | new_ids
    assert bool(inserted) == (method != "head")
    kinds = {DomainBottleneckAdapter: "adapter", DomainLoRA: "lora"}
    assert {kinds[type(l)] for l in model.layers if type(l) in kinds} == ({method} - {"head"})
    # Trainable: the new domain's third of every grown or inserted per-domain table (D = 3), the new ids' rows.
    sizes = model.transfer["vocabulary_sizes"]["user_id"]
    new_rows = (sizes[2] - sizes[0]) * sum(int(tables[p].shape[1]) for p in new_ids)
    per_domain = sum(int(np.prod(v.shape)) // 3 for v in model.trainable_weights if v.path not in new_ids)
    assert report["trainable"] == per_domain + new_rows
    assert report["trainable"] < report["total"]


def test_old_domains_stay_bit_for_bit_under_an_xla_fit(batches):
    model = km.transfer.add_domain(_cached_source("shared_bottom"), "d2", data=NEW, method="adapter")
    before = _predict(model, batches["old"])
    users = model.get_layer("embedding").tables[0].embeddings
    assert "user_id" in users.path
    users_before = np.asarray(users)
    km.training.train(model, DATA.frame, epochs=1, batch_size=200, learning_rate=0.05, verbose=0)
    assert model.jit_compile
    after = _predict(model, batches["old"])
    for task in before:
        np.testing.assert_array_equal(after[task], before[task], err_msg=task)
    known = model.transfer["vocabulary_sizes"]["user_id"][0] + 1  # the OOV row and the source's users
    np.testing.assert_array_equal(np.asarray(users)[:known], users_before[:known])
    assert not np.array_equal(np.asarray(users)[known:], users_before[known:]), "the new users' rows did not train"


# Ids first seen in the new domain ---------------------------------------------


def _model_batch(model, frame):
    """`(core inputs, labels)` of `frame` through `model`'s own preprocessor."""
    inputs, labels = km.data.prepare_columns(frame, model.features, model.domain, DATA.tasks)
    core = model.preprocessor({k: tf.constant(v) for k, v in inputs.items()})
    return core, {k: tf.constant(v) for k, v in labels.items()}


def test_ids_first_seen_in_the_new_domain_get_own_rows_and_old_domains_still_map_them_to_oov():
    source = _cached_source("mmoe")
    model = km.transfer.add_domain(source, "d2", data=NEW, method="head")
    old_users, users = source.features[0].vocabulary, model.features[0].vocabulary
    new_users = sorted(set(NEW.user_id) - set(old_users))
    assert new_users, "the test data has no user first seen in d2"
    assert users[: len(old_users)] == old_users and sorted(users[len(old_users) :]) == new_users
    assert model.transfer["vocabulary_sizes"] == {"user_id": [len(old_users)] * 2 + [len(users)]}
    assert not km.transfer.add_domain(source, "d2", data=NEW, method="head", learn_new_ids=False).transfer[
        "vocabulary_sizes"]
    rare = km.transfer.add_domain(source, "d2", data=NEW, method="head", new_id_min_count=1000)
    assert rare.features[0].vocabulary == old_users

    # A new user: its own row in d2; sent as d0, the OOV row, as the source model maps it.
    newcomer = NEW[NEW.user_id == new_users[0]].iloc[:1]
    as_d0 = newcomer.assign(domain="d0")
    core = _model_batch(model, pd.concat([newcomer, as_d0], ignore_index=True))[0]
    assert core["user_id"].numpy().tolist() == [users.index(new_users[0]) + 1, 0]
    table = model.get_layer("embedding").tables[0].embeddings
    np.testing.assert_array_equal(np.asarray(table)[len(old_users) + 1 :], np.asarray(table)[[0] * len(new_users)])

    # Old domains, some rows with a new user: bit-for-bit the source model's predictions, before and after training.
    old = OLD.copy()
    old.loc[:20, "user_id"] = new_users[0]
    expected = _predict(source, _batch(old, SOURCE_DOMAIN))
    before = np.asarray(table)
    for moment in ("before", "after"):
        for task, values in _predict(model, _model_batch(model, old)).items():
            np.testing.assert_array_equal(values, expected[task], err_msg=f"{task} {moment} training")
        _train_step(model, _model_batch(model, DATA.frame))
    after = np.asarray(table)
    np.testing.assert_array_equal(after[: len(old_users) + 1], before[: len(old_users) + 1])
    assert np.all(np.any(after[len(old_users) + 1 :] != before[len(old_users) + 1 :], axis=1)), "a new row is fixed"


# One model per kind of LoRA host: MLPBlock, ExpertBank, Dense, HyperNetwork.
@pytest.mark.parametrize("name", ["shared_bottom", "mmoe", "star", "hamur"])
def test_lora_merged_into_kernels_predicts_as_unmerged(name, batches):
    source = _cached_source(name)
    model = km.transfer.add_domain(source, "d2", data=NEW, method="lora", rank=2)
    _train_step(model, batches["mixed"], keras.optimizers.Adam(0.05))
    merged = model.serving_model()
    assert any(isinstance(l, DomainLoRA) and l.merged for l in merged.layers)
    for batch in (batches["old"], batches["new"]):
        expected = _predict(model, batch)
        for task, values in _predict(merged, batch).items():
            np.testing.assert_allclose(values, expected[task], atol=1e-5, rtol=1e-5, err_msg=task)


def test_domain_bottleneck_adapter_passes_layer_test_case():
    run_layer_test(
        DomainBottleneckAdapter,
        {"bottleneck": 3, "num_domains": 3},
        lambda b: {"inputs": RNG.normal(size=(b, 2, 5)).astype("float32"),
                   "domain_ids": RNG.integers(0, 3, b).astype("int32")},
        expected_output_shape=(8, 2, 5),
        expected_num_trainable_weights=4,
    )


def test_domain_lora_passes_layer_test_case():
    run_layer_test(
        DomainLoRA,
        {"host": km.layers.ExpertBank(3, [6, 4]), "rank": 2, "num_domains": 3},
        lambda b: {"inputs": RNG.normal(size=(b, 5)).astype("float32"),
                   "domain_ids": RNG.integers(0, 3, b).astype("int32")},
        expected_output_shape=(8, 3, 4),
        expected_num_trainable_weights=4,  # A and B of each of the two layers; the experts stay frozen
    )


def _random_factors(lora):
    for a, b in lora.factors:
        a.assign(RNG.normal(size=a.shape).astype("float32"))
        b.assign(RNG.normal(size=b.shape).astype("float32"))


def test_domain_lora_routes_each_row_through_its_own_domain_update():
    dense = keras.layers.Dense(3)
    x = RNG.normal(size=(7, 4)).astype("float32")
    domains = np.array([0, 1, 2, 1, 0, 2, 2])
    lora = DomainLoRA(dense, rank=2, num_domains=3, alpha=4.0)
    lora(x, domains)
    _random_factors(lora)
    a, b = (f.numpy() for f in lora.factors[0])
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    expected = np.stack([x[i] @ (kernel + 2.0 * a[d] @ b[d]) + bias for i, d in enumerate(domains)])
    np.testing.assert_allclose(lora(x, domains), expected, atol=1e-5)


def test_domain_lora_on_experts_equals_a_loop_over_rows_and_experts():
    bank = km.layers.ExpertBank(2, [4, 3])
    x = RNG.normal(size=(6, 5)).astype("float32")
    domains = np.array([2, 0, 1, 1, 2, 0])
    lora = DomainLoRA(bank, rank=2, num_domains=3)
    lora(x, domains)
    _random_factors(lora)
    expected = np.zeros((6, 2, 3), "float32")
    for i, d in enumerate(domains):
        for e in range(2):
            h = x[i]
            for (kernel, bias), (a, b) in zip(zip(bank.kernels, bank.biases), lora.factors):
                g = d * 2 + e  # the (domain, expert) group
                h = np.maximum(h @ (kernel.numpy()[e] + a.numpy()[g] @ b.numpy()[g]) + bias.numpy()[e], 0.0)
            expected[i, e] = h
    np.testing.assert_allclose(lora(x, domains), expected, atol=1e-5)
    merged = DomainLoRA(bank, rank=2, num_domains=3, merged=True)
    merged(x, domains)
    merged.set_weights(lora.merged_weights())
    np.testing.assert_allclose(merged(x, domains), expected, atol=1e-5)


def test_domain_bottleneck_adapter_equals_a_loop_over_rows():
    adapter = DomainBottleneckAdapter(bottleneck=3, num_domains=3)
    x = RNG.normal(size=(7, 2, 4)).astype("float32")
    domains = np.array([0, 1, 2, 1, 0, 2, 2])
    adapter(x, domains)
    for weight in adapter.weights:
        weight.assign(RNG.normal(size=weight.shape).astype("float32"))
    down, up = adapter.down, adapter.up
    expected = np.stack([
        x[i] + np.maximum(x[i] @ down.kernel.numpy()[d] + down.bias.numpy()[d], 0.0) @ up.kernel.numpy()[d]
        + up.bias.numpy()[d]
        for i, d in enumerate(domains)
    ])
    np.testing.assert_allclose(adapter(x, domains), expected, atol=1e-5)


# Saving, export and serving ----------------------------------------------


def test_transferred_model_saves_exports_and_serves_old_and_new_domains(tmp_path, batches):
    from keras_mdr.serving import PredictClient, start_server
    from keras_mdr.testing.serving_checks import TfOnlyPrediction

    source = _cached_source("mmoe")
    model = km.transfer.add_domain(source, "d2", data=NEW, method="lora", rank=2)
    _train_step(model, _model_batch(model, DATA.frame), keras.optimizers.Adam(0.05))
    rows = DATA.frame.iloc[:64].drop(columns=["click", "like"]).reset_index(drop=True)
    assert set(rows.domain) == {"d0", "d1", "d2"}
    new_users = set(model.features[0].vocabulary) - set(source.features[0].vocabulary)
    assert new_users & set(rows.user_id[rows.domain == "d2"]), "no served row has a user first seen in d2"
    expected = model.predict(rows, batch_size=64)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.transfer == model.transfer
    for task, values in loaded.predict(rows, batch_size=64).items():
        np.testing.assert_allclose(values, expected[task], atol=1e-6, err_msg=f"{task} after .keras")

    base_dir = tmp_path / "export" / "mdr"
    version_dir = km.export_saved_model(loaded, base_dir, warmup_data=rows)
    columns, _ = km.data.prepare_columns(rows, model.features, model.domain)
    tf_only = TfOnlyPrediction(version_dir, columns, single_rows=(0,))
    with start_server(base_dir, "mdr") as server, PredictClient(server.target, "mdr") as client:
        served = client.predict(rows)
    exported, _ = tf_only.result()
    for task, values in expected.items():
        np.testing.assert_allclose(exported[task], values, atol=1e-5, err_msg=f"{task}: SavedModel (TF only)")
        np.testing.assert_allclose(served[task], values, atol=1e-5, err_msg=f"{task}: gRPC")


# Bad input ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "model.keras"
    _cached_source("shared_bottom").save(path)
    return path


def _unchanged(path):
    return path.stat().st_mtime_ns, path.read_bytes()


@pytest.mark.parametrize(
    "domain, data, message",
    [
        ("d1", NEW, "'d1' is already a domain of column 'domain'"),
        ({"fresh": ["d0"]}, NEW, "Value 'd0' of column 'domain' already belongs to domain 'd0'"),
        ("d2", NEW.drop(columns=["item_id"]), "missing feature column 'item_id'"),
        ("d2", OLD, "no rows of the new domain 'd2'"),
    ],
    ids=["existing-domain", "existing-value", "missing-column", "no-new-rows"],
)
def test_bad_input_is_named_and_leaves_the_source_file_untouched(saved_source, domain, data, message):
    before = _unchanged(saved_source)
    with pytest.raises(ValueError, match=message):
        km.transfer.add_domain(saved_source, domain, data=data)
    assert _unchanged(saved_source) == before


def test_files_that_are_not_keras_mdr_models_are_refused(tmp_path):
    plain = tmp_path / "plain.keras"
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(plain)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(os.urandom(64))
    for path, message in ((plain, "is not a keras_mdr model: it holds a Functional"),
                          (garbage, "is not a keras_mdr model: it does not load")):
        before = _unchanged(path)
        with pytest.raises(ValueError, match=message):
            km.transfer.add_domain(path, "d2", data=NEW)
        assert _unchanged(path) == before


def test_unknown_method_and_init_from_are_refused(saved_source):
    with pytest.raises(ValueError, match="method must be one of"):
        km.transfer.add_domain(saved_source, "d2", data=NEW, method="prompt")
    with pytest.raises(ValueError, match=r"init_from must name a domain of the model \['d0', 'd1'\], got 'd7'"):
        km.transfer.add_domain(saved_source, "d2", data=NEW, init_from="d7")
    with pytest.raises(ValueError, match="new_id_min_count must be an integer >= 1 or None, got 0"):
        km.transfer.add_domain(saved_source, "d2", data=NEW, new_id_min_count=0)


def test_readme_transfer_example_runs(tmp_path, monkeypatch):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    snippet = re.search(r"<!-- transfer-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md (transfer example)", "exec"), {})
    assert (tmp_path / "exports" / "mdr" / "1" / "saved_model.pb").exists()
