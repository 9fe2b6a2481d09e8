"""TransRec: XLA training, full ranking against numpy, masking, adapters (identity, trainable sets), saving, bad input."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mdr as km
from keras_mdr import transrec
from keras_mdr.testing import run_layer_test
from keras_mdr.transrec import evaluation, preprocessing
from keras_mdr.transrec.transfer import ADAPTER_METHODS, METHODS

MAX_LENGTH, DIM = 6, 8
RNG = np.random.default_rng(0)
TINY = dict(
    dim=DIM, max_length=MAX_LENGTH, num_blocks=1, text_blocks=1, text_hidden_dim=DIM, sequence_length=8, dropout=0.0
)
SMALL_ADAPTERS = dict(bottleneck=4, lora_rank=2, phm_dim=2, num_prompts=2)


@pytest.fixture(scope="module")
def data():
    return km.data.synthetic_transfer(source_users=48, target_users=24, num_items=40, mean_length=9, seed=3)


@pytest.fixture(scope="module")
def pretrained(data):
    """A tiny text TransRec standing in for a pre-trained one (its weights are random, not initial)."""
    keras.utils.set_random_seed(0)
    model = transrec.build_transrec(data[0], "text", tokenizer="word", **TINY)
    for weight in model.weights:
        weight.assign(weight + RNG.normal(size=weight.shape, scale=0.05))
    return model


def _naive_ranks(model, data, split):
    """Full ranking one user at a time: encode each item alone, score in numpy, mask with a Python set."""
    vectors = np.stack(
        [np.asarray(model.encode_items(model.item_features(np.array([i])), training=False))[0] for i in range(1, model.num_items + 1)]
    )
    vectors = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    cut = 2 if split == "valid" else 1
    ranks = []
    for seq in data.sequences:
        before, target = seq[:-cut], seq[-cut]
        history = before[-MAX_LENGTH:]
        states = model.encode_users(vectors[history][None], history[None], training=False)
        scores = vectors @ np.asarray(states)[0, -1]
        allowed = [i for i in range(1, model.num_items + 1) if i not in set(before.tolist())]
        ranks.append(sum(scores[i] > scores[target] for i in allowed))
    return np.array(ranks)


def test_text_model_trains_under_xla_and_its_full_ranking_equals_a_naive_numpy_computation(data):
    source = data[0]
    keras.utils.set_random_seed(0)
    model = transrec.build_transrec(source, "text", tokenizer="word", **TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    assert model.jit_compile, "jit_compile was turned off: the core must compile with XLA"
    history = model.fit(source, validation_data=source, batch_size=16, epochs=1, verbose=0)  # ranking under XLA too
    assert model.jit_compile and np.isfinite(history.history["loss"]).all()

    naive = _naive_ranks(model, source, "valid")
    assert history.history["val_ndcg@10"][0] == pytest.approx(np.mean((naive < 10) / np.log2(naive + 2)), abs=1e-12)
    history_items, target, seen = source.evaluation("valid", MAX_LENGTH)
    table = evaluation.item_table(model)
    np.testing.assert_array_equal(evaluation.ranks(model, table, history_items, target, seen, batch_size=16), naive)
    results = transrec.full_ranking(model, source, "valid")
    assert results["users"] == source.num_users
    assert results["hr@10"] == pytest.approx(np.mean(naive < 10), abs=1e-12)
    assert 0 < results["hr@10"] < 1, "a degenerate case would not test the ranking"


def test_training_batch_encodes_each_distinct_item_once_and_matches_per_occurrence_encoding(pretrained, data):
    batch = next(iter(pretrained.make_dataset(data[0], batch_size=8, shuffle=False)))
    items, negatives = batch["items"].numpy(), batch["negatives"].numpy()
    assert not np.isin(negatives[0], items[0]).any(), "a negative may not be an item of its window"
    outputs = pretrained(batch, training=False)
    for name, indices in (("targets", items[:, 1:]), ("negatives", negatives)):
        per_occurrence = pretrained.encode_items(pretrained.item_features(indices), training=False)
        np.testing.assert_allclose(outputs[name], per_occurrence, atol=1e-5)


def test_losses_equal_their_equations_in_numpy(pretrained):
    users, targets = RNG.normal(size=(2, 3, DIM)), RNG.normal(size=(2, 3, DIM))
    negatives = RNG.normal(size=(2, 3, 1, DIM))
    items = np.array([[0, 5, 6, 7], [3, 4, 5, 3]])  # row 1 repeats item 3: not its own negative
    y_pred = {k: v.astype("float32") for k, v in dict(users=users, targets=targets, negatives=negatives).items()}
    valid = items[:, :-1] > 0
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    positive, negative = (users * targets).sum(-1), (users * negatives[:, :, 0]).sum(-1)
    bce = softplus(-positive)[valid].mean() + softplus(negative)[valid].mean()
    assert float(pretrained.compute_loss({"items": items}, None, y_pred)) == pytest.approx(bce, rel=1e-5)

    pretrained.loss_name = "sampled_softmax"
    try:
        got = float(pretrained.compute_loss({"items": items}, None, y_pred))
    finally:
        pretrained.loss_name = "bce"
    flat_users, flat_targets = users.reshape(-1, DIM), targets.reshape(-1, DIM)
    ids, ok = items[:, 1:].reshape(-1), valid.reshape(-1)
    losses = []
    for row in np.flatnonzero(ok):
        candidates = [c for c in np.flatnonzero(ok) if c == row or ids[c] != ids[row]]
        logits = flat_targets[candidates] @ flat_users[row]
        losses.append(np.log(np.exp(logits).sum()) - flat_targets[row] @ flat_users[row])
    assert got == pytest.approx(np.mean(losses), rel=1e-5)


def _future_check(encoder, width):
    x = RNG.normal(size=(2, MAX_LENGTH, width)).astype("float32")
    mask = np.array([[0, 0, 1, 1, 1, 1], [1] * MAX_LENGTH], bool)
    base = np.asarray(encoder(x, mask))
    for t in range(2, MAX_LENGTH):
        changed = x.copy()
        changed[:, t] += RNG.normal(size=(2, width))
        out = np.asarray(encoder(changed, mask))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-5, err_msg=f"a position before {t} saw {t}")
        assert np.abs(out[:, t] - base[:, t]).max() > 1e-4
    padded = x.copy()
    padded[0, :2] = 100.0  # padding positions
    np.testing.assert_allclose(np.asarray(encoder(padded, mask))[0, 2:], base[0, 2:], atol=1e-5)


@pytest.mark.parametrize("method", ["pretrained", "houlsby", "pfeiffer", "parallel", "lora", "compacter", "kadapter"])
def test_no_position_of_the_user_encoder_sees_the_future_or_the_padding(method, pretrained, data):
    model = pretrained if method == "pretrained" else transrec.transfer(pretrained, data[1], method, **SMALL_ADAPTERS)
    encoder = model.user_encoder
    if method != "pretrained":  # adapters that are not the identity any more
        for weight in (w for a in encoder.adapter_layers() for w in a.trainable_weights):
            weight.assign(RNG.normal(size=weight.shape, scale=0.3))
    _future_check(encoder, DIM)


@pytest.mark.parametrize("method", [m for m in ADAPTER_METHODS if m != "soft_prompt"])
def test_every_adapter_starts_as_the_identity_of_the_pretrained_encoders(method, pretrained, data):
    target = data[1]
    reference = transrec.transfer(pretrained, target, "finetune")
    adapted = transrec.transfer(pretrained, target, method, **SMALL_ADAPTERS)
    assert adapted.method == method and reference.method == "finetune"
    table = evaluation.item_table(reference, jit_compile=False)
    np.testing.assert_allclose(evaluation.item_table(adapted, jit_compile=False), table, atol=1e-5)
    history, _, _ = target.evaluation("test", MAX_LENGTH)
    np.testing.assert_allclose(
        evaluation.user_vectors(adapted, table, history), evaluation.user_vectors(reference, table, history), atol=1e-5
    )


def test_soft_prompt_keeps_every_title_token_and_only_adds_prompts(pretrained, data):
    adapted = transrec.transfer(pretrained, data[1], "soft_prompt", **SMALL_ADAPTERS)
    encoder = adapted.item_encoder
    tokens = adapted.item_features(np.arange(1, 5))
    states = encoder.token_states(tokens)
    assert tuple(states.shape) == tokens.shape + (encoder.hidden_dim,)  # prompts stripped after the blocks
    encoder.soft_prompt.prompts.assign(np.random.default_rng(1).normal(size=encoder.soft_prompt.prompts.shape) * 3)
    moved = np.abs(np.asarray(encoder.token_states(tokens)) - np.asarray(states)).max()
    assert moved > 1e-3, f"the prompts must reach the title tokens through attention (moved {moved})"


def _expected_trainable(model, method, norms):
    if method in ("finetune", "scratch"):
        return {id(w) for w in model.weights}
    expected = set()
    for encoder in (model.item_encoder, model.user_encoder):
        expected |= {id(w) for a in encoder.adapter_layers() for w in a.trainable_weights}
        if norms:
            layers = list(encoder.host_layers().items())
            layers += [(n, l) for b in encoder.blocks for n, l in b.host_layers().items()]
            expected |= {id(w) for name, layer in layers if name.endswith("_norm") for w in layer.weights}
    return expected


@pytest.mark.parametrize("norms", [False, True], ids=["adapters", "adapters+norms"])
@pytest.mark.parametrize("method", METHODS)
def test_trainable_weights_are_exactly_the_methods(method, norms, pretrained, data):
    if norms and method not in ADAPTER_METHODS:
        pytest.skip("train_layer_norms applies to the adapter methods")
    adapted = transrec.transfer(pretrained, data[1], method, train_layer_norms=norms, **SMALL_ADAPTERS)
    trainable = {id(w) for w in adapted.trainable_weights}
    assert trainable == _expected_trainable(adapted, method, norms)
    if method in ADAPTER_METHODS:
        report = transrec.trainable_report(adapted)
        assert 0 < report["trainable"] < 0.5 * report["total"]
    if method == "lora":  # the trained kernels are kept, frozen, under the LoRA factors
        block = adapted.user_encoder.blocks[0]
        np.testing.assert_array_equal(block.query.base.kernel, pretrained.user_encoder.blocks[0].query.kernel)


@pytest.mark.parametrize("method", ["pretrained", "compacter", "lora"])
def test_keras_round_trip_keeps_scores_adapters_and_trainable_sets(method, pretrained, data, tmp_path):
    model = pretrained if method == "pretrained" else transrec.transfer(pretrained, data[1], method, **SMALL_ADAPTERS)
    for weight in (w for w in model.trainable_weights if method != "pretrained"):
        weight.assign(weight + RNG.normal(size=weight.shape, scale=0.1))
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is transrec.TransRec and loaded.method == model.method
    np.testing.assert_allclose(
        evaluation.item_table(loaded, jit_compile=False), evaluation.item_table(model, jit_compile=False), atol=1e-6
    )
    assert [(w.shape, w.trainable) for w in loaded.weights] == [(w.shape, w.trainable) for w in model.weights]
    if method == "compacter":  # one rule shared by every adapter, before and after loading
        rules = {id(a.rule) for e in (loaded.item_encoder, loaded.user_encoder) for a in e.adapter_layers()}
        assert len(rules) == 1


def test_export_signatures_match_the_keras_model_a_naive_top_k_and_a_tensorflow_only_process(
    pretrained, data, tmp_path
):
    from keras_mdr.testing.serving_checks import TfOnlyPrediction

    source = data[0]
    path = transrec.export_transrec(pretrained, tmp_path / "transrec", k=5)
    tf_only_history = np.array([list(source.item_ids[s[-4:-1]]) for s in source.sequences[:4]], dtype=object)
    tf_only = TfOnlyPrediction(path, {"history": tf_only_history})  # runs while this test goes on
    loaded = tf.saved_model.load(path)
    histories = [list(source.item_ids[s[:-1]]) for s in source.sequences[:3]]
    histories[1] = ["unknown-id"] + histories[1]  # skipped, as padding
    ids, scores = transrec.recommend(pretrained, histories, k=5)
    width = max(map(len, histories))
    padded = np.array([h + [""] * (width - len(h)) for h in histories])
    served = loaded.signatures["serving_default"](history=tf.constant(padded))
    np.testing.assert_array_equal(served["item_ids"].numpy().astype(str), ids)
    np.testing.assert_allclose(served["scores"].numpy(), scores, atol=1e-5)

    table = evaluation.item_table(pretrained)
    for row, history in enumerate(histories):
        indices = np.array([np.flatnonzero(source.item_ids == i)[0] + 1 for i in history if i in source.item_ids])
        window = indices[-MAX_LENGTH:]
        user = np.asarray(pretrained.encode_users(table[window][None], window[None]))[0, -1]
        naive = table @ user
        naive[0], naive[indices] = -np.inf, -np.inf
        top = np.argsort(-naive, kind="stable")[:5]
        np.testing.assert_array_equal(ids[row], source.item_ids[top - 1])
        np.testing.assert_allclose(scores[row], naive[top], atol=1e-5)

    vectors = loaded.signatures["item_vectors"](item_text=tf.constant(source.item_texts[:4]))["item_vector"]
    np.testing.assert_allclose(vectors, table[1:5], atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one item id of the catalogue"):
        loaded.signatures["serving_default"](history=tf.constant([["", "unknown-id"]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-empty text"):
        loaded.signatures["item_vectors"](item_text=tf.constant(["Rocket Orbit", " "]))

    served, _ = tf_only.result()
    ids, scores = transrec.recommend(pretrained, tf_only_history, k=5)
    np.testing.assert_array_equal(served["item_ids"], ids)
    np.testing.assert_allclose(served["scores"], scores, atol=1e-5)


def test_long_histories_are_read_through_their_most_recent_items():
    indices = tf.constant([[0, 4, 0, 5, 6, 7, 8, 9, 10, 11], [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    aligned = preprocessing.left_align(indices, max_length=6).numpy()
    assert aligned.tolist() == [[6, 7, 8, 9, 10, 11], [0, 0, 0, 0, 0, 3]]


def test_bad_input_gets_clear_errors(pretrained, data):
    source, target = data
    with pytest.raises(ValueError, match="not this model's"):
        transrec.full_ranking(pretrained, target)
    with pytest.raises(ValueError, match="history length 7 is longer than max_length=6"):
        pretrained.user_encoder(np.zeros((1, 7, DIM), "float32"), np.ones((1, 7), bool))
    with pytest.raises(ValueError, match=r"histories \[1\] have no item id of the catalogue"):
        transrec.recommend(pretrained, [[source.item_ids[0]], ["nope"]])
    with pytest.raises(ValueError, match=r"histories \[0\] have no item id of the catalogue"):
        transrec.recommend(pretrained, [[], [source.item_ids[0]]])  # an empty history
    with pytest.raises(ValueError, match="method must be one of"):
        transrec.transfer(pretrained, target, "adapter")
    id_model = transrec.build_transrec(source, "id", **TINY)
    with pytest.raises(ValueError, match="needs a text item encoder"):
        transrec.transfer(id_model, target, "houlsby")
    ids_only = km.data.SequenceData(target.item_ids, None, target.user_ids, target.sequences)
    with pytest.raises(ValueError, match="needs item texts"):
        transrec.build_transrec(ids_only, "text", **TINY)
    small = km.data.SequenceData(["a", "b", "c", "d"], ["A", "B", "C", "D"], ["u"], [[1, 2, 3, 4]])
    with pytest.raises(ValueError, match="negative sampling needs more than a window"):
        transrec.build_transrec(small, "text", **TINY)


@pytest.mark.parametrize(
    "layer_cls, init, inputs, shape",
    [
        (
            transrec.SASRecEncoder,
            dict(max_length=MAX_LENGTH, num_blocks=1, dropout=0.1),
            lambda b: {
                "item_vectors": RNG.normal(size=(b, MAX_LENGTH, DIM)).astype("float32"),
                "padding_mask": np.arange(MAX_LENGTH)[None] >= RNG.integers(0, MAX_LENGTH, (b, 1)),
            },
            (8, MAX_LENGTH, DIM),
        ),
        (
            transrec.TextItemEncoder,
            dict(vocabulary_size=30, sequence_length=5, output_dim=DIM, hidden_dim=DIM, num_blocks=1),
            lambda b: {"tokens": np.concatenate([np.ones((b, 1)), RNG.integers(0, 30, (b, 4))], 1).astype("int32")},
            (8, DIM),
        ),
        (transrec.IdItemEncoder, dict(num_items=20, output_dim=DIM), lambda b: {"items": RNG.integers(0, 21, (b, 3))}, (8, 3, DIM)),
    ],
    ids=["sasrec", "text", "id"],
)
def test_encoders_pass_the_layer_test(layer_cls, init, inputs, shape):
    run_layer_test(layer_cls, init, inputs, expected_output_shape=shape)


def test_word_tokenizer_splits_lowercases_and_truncates():
    tokenizer = transrec.TitleTokenizer(["toy", "story"], sequence_length=4)
    tokens = tokenizer(tf.constant(["Toy Story (1995)", "STORY", "toy toy toy toy toy"])).numpy()
    assert tokens.tolist() == [[1, 3, 4, 2], [1, 4, 0, 0], [1, 3, 3, 3]]


def test_keras_hub_bert_preset_on_disk_loads_into_the_text_encoder(tmp_path, data):
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is the optional extra `text`")
    texts = data[0].item_texts
    vocabulary = transrec.tokenizers.wordpiece_vocabulary(texts, size=120)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16
    )
    backbone.save_to_preset(str(tmp_path))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(tmp_path))
    encoder, tokenizer = transrec.text_encoder_from_preset(str(tmp_path), output_dim=DIM, sequence_length=10)
    tokens = tokenizer(tf.constant(texts[:3])).numpy()
    assert tokenizer.kind == "wordpiece" and (tokens[:, 0] == vocabulary.index("[CLS]")).all()
    expected = backbone(
        {"token_ids": tokens, "segment_ids": np.zeros_like(tokens), "padding_mask": (tokens != 0).astype("int32")}
    )["sequence_output"]
    mask = tokens != 0
    np.testing.assert_allclose(np.asarray(encoder.token_states(tokens))[mask], np.asarray(expected)[mask], atol=1e-5)
    model = transrec.build_transrec(data[0], "text", preset=str(tmp_path), **dict(TINY, sequence_length=10))
    assert model.tokenizer.vocabulary == vocabulary and model.item_encoder.pooling == "cls"


def test_auto_tokenizer_falls_back_to_words_without_keras_hub(monkeypatch, data):
    from keras_mdr.transrec import tokenizers

    monkeypatch.setattr(tokenizers, "keras_hub_available", lambda: False)
    assert tokenizers.make_tokenizer(data[0].item_texts, "auto").kind == "word"
    with pytest.raises(ImportError, match=r"keras-mdr\[text\]"):
        tokenizers.make_tokenizer(data[0].item_texts, "wordpiece")


def test_readme_transrec_example_runs():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    snippet = re.search(r"<!-- transrec-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(snippet, "README.md (transrec example)", "exec"), namespace)
    assert namespace["item_ids"].shape == (1, 5) and not set(namespace["item_ids"][0]) & set(namespace["target"].item_ids[:3])
