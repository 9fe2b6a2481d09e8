"""Training on a `tf.distribute` strategy: two logical CPUs end where one process does on the same global batches."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from training_callbacks import EpochRecorder, InterruptAtEpoch2

import keras_mdr as km
from keras_mdr.testing import tiny_synthetic

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """The JSON of `mirrored_equivalence.py`, run once in its own process (it needs two logical CPUs)."""
    out = tmp_path_factory.mktemp("mirrored") / "results.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(
        [sys.executable, os.path.join(HERE, "mirrored_equivalence.py"), str(out)],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", ["mmoe", "hamur", "cesaa"])
def test_mirrored_training_ends_with_the_trainable_weights_of_one_process(mirrored, name):
    assert mirrored[name]["weight_difference"] < 1e-5


@pytest.mark.parametrize("name", ["mmoe", "hamur", "cesaa"])
def test_mirrored_training_logs_the_metrics_of_one_process(mirrored, name):
    # mmoe also validates: its `val_` logs are compared with the single-process model's `evaluate`.
    mirrored_logs, single_logs = mirrored[name]["mirrored_logs"], mirrored[name]["single_logs"]
    assert "click/d0/auc" in mirrored_logs and set(mirrored_logs) == set(single_logs)
    assert ("val_click/d0/auc" in mirrored_logs) == (name == "mmoe")
    for key, value in single_logs.items():
        np.testing.assert_allclose(mirrored_logs[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_evaluate_report_after_mirrored_training_is_that_of_one_process(mirrored):
    mirrored_report, single_report = mirrored["mmoe"]["evaluate_reports"]
    assert mirrored_report["tasks"]["like"]["domains"]["d0"]["count"] > 0
    np.testing.assert_allclose(mirrored_report["auc"], single_report["auc"], rtol=1e-5)
    for task, report in single_report["tasks"].items():
        for domain, values in report["domains"].items():
            assert mirrored_report["tasks"][task]["domains"][domain]["count"] == values["count"]
            np.testing.assert_allclose(mirrored_report["tasks"][task]["domains"][domain]["logloss"],
                                       values["logloss"], rtol=1e-5, err_msg=f"{task}/{domain}")


def test_the_replicas_saw_unequal_labelled_rows(mirrored):
    # Else a mean over each replica's rows divided by the replica count would pass the tests above too.
    for name, result in mirrored.items():
        batches = result["labelled_rows_per_replica"]  # [batch][replica][task]
        assert any(replicas[0] != replicas[1] for replicas in batches), name


def test_each_replica_keeps_its_own_moving_statistics(mirrored):
    # As documented in keras_mdr.training.distributed: HAMUR's DomainNormalization is not synchronised.
    assert mirrored["hamur"]["state_copies_differ"] == ["adapter_1/norm/moving_mean", "adapter_1/norm/moving_variance"]
    assert mirrored["mmoe"]["state_copies_differ"] == mirrored["cesaa"]["state_copies_differ"] == []


def test_a_model_built_outside_the_strategy_scope_is_refused():
    data = tiny_synthetic(100)
    model = km.build_model("mmoe", data.features, data.domain, data.tasks, data=data.frame,
                           num_experts=2, expert_units=[4], tower_units=[4])
    with pytest.raises(ValueError, match="not created under this MirroredStrategy's scope"):
        km.training.train(model, data.frame, epochs=1, strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))


def test_training_on_a_strategy_stops_early_and_restores_the_best_epoch():
    data = tiny_synthetic(300)
    train, validation = data.frame.iloc[:200], data.frame.iloc[200:]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = km.build_model("mmoe", data.features, data.domain, data.tasks, data=data.frame,
                               num_experts=2, expert_units=[4], tower_units=[4])
    recorder = EpochRecorder(spoil_at=1)
    history = km.training.train(model, train, validation, epochs=4, batch_size=100, learning_rate=1e-2,
                                early_stopping_patience=1, monitor="val_loss", jit_compile=False, verbose=0,
                                callbacks=[recorder], strategy=strategy)
    assert history.epoch == [0, 1], "the spoiled epoch 1 does not beat epoch 0: patience 1 stops there"
    assert recorder.val_loss[1] > recorder.val_loss[0]
    for restored, recorded in zip(model.get_weights(), recorder.weights[0]):
        np.testing.assert_array_equal(restored, recorded)


def test_training_on_a_strategy_keeps_the_source_domains_of_a_frozen_transfer():
    data = tiny_synthetic(300)
    old, new = data.frame[data.frame.domain != "d2"], data.frame[data.frame.domain == "d2"]
    source = km.build_model("mmoe", data.features, km.Domain("domain", values=["d0", "d1"]), data.tasks, data=old,
                            num_experts=2, expert_units=[4], tower_units=[4])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = km.transfer.add_domain(source, "d2", data=new, method="adapter")

    def predict(rows):
        x = next(iter(model.make_dataset(rows, len(rows), labels=False)))
        return {task: np.asarray(p) for task, p in model(x).items()}

    before_old, before_new = predict(old), predict(new)
    km.training.train(model, new, epochs=2, batch_size=32, learning_rate=0.05, jit_compile=False, verbose=0,
                      strategy=strategy)
    after_old, after_new = predict(old), predict(new)
    for task in before_old:
        np.testing.assert_array_equal(after_old[task], before_old[task], err_msg=task)
        assert np.max(np.abs(after_new[task] - before_new[task])) > 1e-3, task


def test_an_interrupted_run_on_a_strategy_resumes_where_it_stopped(tmp_path):
    data = tiny_synthetic(300)
    train, validation = data.frame.iloc[:200], data.frame.iloc[200:]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])

    def run(callbacks):
        with strategy.scope():
            model = km.build_model("mmoe", data.features, data.domain, data.tasks, data=data.frame,
                                   num_experts=2, expert_units=[4], tower_units=[4])
        history = km.training.train(model, train, validation, epochs=4, batch_size=100, learning_rate=1e-2,
                                    backup_dir=str(tmp_path / "backup"), jit_compile=False, verbose=0,
                                    callbacks=callbacks, strategy=strategy)
        return model, history

    with pytest.raises(KeyboardInterrupt):
        run([InterruptAtEpoch2()])
    model, history = run([])
    assert history.epoch == [2, 3], "the resumed run must train only the epochs that were left"
    assert int(model.optimizer.iterations.numpy()) == 4 * 2, "the optimizer state was restored too"
