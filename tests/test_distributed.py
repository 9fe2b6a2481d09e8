"""Training on a `tf.distribute` strategy: two logical CPUs end where one process does on the same global batches."""

import json
import os
import signal
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from training_callbacks import EpochRecorder, InterruptAtEpoch2

import keras_mdr as km
from keras_mdr.testing import tiny_synthetic
from keras_mdr.training import distributed

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """The JSON of `mirrored_equivalence.py`, run once in its own process (it needs two logical CPUs)."""
    out = tmp_path_factory.mktemp("mirrored") / "results.json"
    run = subprocess.run(
        [sys.executable, os.path.join(HERE, "mirrored_equivalence.py"), str(out)],
        env=ENV, capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(out.read_text())


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(command, folder, timeout, workers=2, log="worker"):
    """Runs `command` (argv) once per worker of a cluster on 127.0.0.1, `TF_CONFIG` set; returns the exit codes.

    Each worker's output goes to `folder/{log}{i}.log`; any worker still
    running after `timeout` seconds is killed.
    """
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(workers)]}
    processes = []
    try:
        for index in range(workers):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            with open(folder / f"{log}{index}.log", "w") as output:
                processes.append(subprocess.Popen(command, env=dict(ENV, TF_CONFIG=tf_config), stdout=output,
                                                  stderr=subprocess.STDOUT, cwd=folder))
        return [process.wait(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def multi_worker_results(folder, names):
    """`multi_worker_equivalence.py` on two workers: `[worker 0's results, worker 1's]`."""
    command = [sys.executable, os.path.join(HERE, "multi_worker_equivalence.py"), str(folder), *names]
    codes = run_workers(command, folder, timeout=900)
    assert codes == [0, 0], "\n".join((folder / f"worker{i}.log").read_text()[-3000:] for i in range(2))
    return [json.loads((folder / f"results{i}.json").read_text()) for i in range(2)]


@pytest.fixture(scope="module")
def multi_worker(tmp_path_factory):
    return multi_worker_results(tmp_path_factory.mktemp("multi_worker"), ["mmoe"])


@pytest.mark.parametrize("name", ["mmoe", "hamur", "cesaa"])
def test_mirrored_training_ends_with_the_trainable_weights_of_one_process(mirrored, name):
    assert mirrored[name]["weight_difference"] < 1e-5


@pytest.mark.parametrize("name", ["mmoe", "hamur", "cesaa"])
def test_mirrored_training_logs_the_metrics_of_one_process(mirrored, name):
    # mmoe also validates: its `val_` logs are compared with the single-process model's `evaluate`.
    mirrored_logs, single_logs = mirrored[name]["distributed_logs"], mirrored[name]["single_logs"]
    assert "click/d0/auc" in mirrored_logs and set(mirrored_logs) == set(single_logs)
    assert ("val_click/d0/auc" in mirrored_logs) == (name == "mmoe")
    for key, value in single_logs.items():
        np.testing.assert_allclose(mirrored_logs[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def _assert_the_report_of_one_process(distributed_report, single_report):
    assert distributed_report["tasks"]["like"]["domains"]["d0"]["count"] > 0
    np.testing.assert_allclose(distributed_report["auc"], single_report["auc"], rtol=1e-5)
    for task, report in single_report["tasks"].items():
        for domain, values in report["domains"].items():
            assert distributed_report["tasks"][task]["domains"][domain]["count"] == values["count"]
            np.testing.assert_allclose(distributed_report["tasks"][task]["domains"][domain]["logloss"],
                                       values["logloss"], rtol=1e-5, err_msg=f"{task}/{domain}")


def test_evaluate_report_after_mirrored_training_is_that_of_one_process(mirrored):
    _assert_the_report_of_one_process(*mirrored["mmoe"]["evaluate_reports"])


def test_the_replicas_parts_make_up_the_global_batches_of_one_process(mirrored):
    for name, result in mirrored.items():
        assert result["global_batches_match"], name


def test_the_replicas_saw_unequal_labelled_rows(mirrored):
    # Else a mean over each replica's rows divided by the replica count would pass the tests above too.
    for name, result in mirrored.items():
        batches = result["labelled_rows_per_replica"]  # [batch][replica][task]
        assert any(replicas[0] != replicas[1] for replicas in batches), name


def test_each_replica_keeps_its_own_moving_statistics(mirrored):
    # As documented in keras_mdr.training.distributed: HAMUR's DomainNormalization is not synchronised.
    assert mirrored["hamur"]["state_copies_differ"] == ["adapter_1/norm/moving_mean", "adapter_1/norm/moving_variance"]
    assert mirrored["mmoe"]["state_copies_differ"] == mirrored["cesaa"]["state_copies_differ"] == []


def _assert_the_run_of_one_process(name, result):
    assert result["global_batches_match"], name
    assert any(replicas[0] != replicas[1] for replicas in result["labelled_rows_per_replica"]), name
    assert result["weight_difference"] < 1e-5, name
    distributed_logs, single_logs = result["distributed_logs"], result["single_logs"]
    assert "click/d0/auc" in distributed_logs and set(distributed_logs) == set(single_logs), name
    for key, value in single_logs.items():
        np.testing.assert_allclose(distributed_logs[key], value, rtol=1e-4, atol=1e-5, err_msg=f"{name}: {key}")


def test_two_workers_end_with_the_weights_and_metrics_of_one_process(multi_worker):
    # mmoe: an uneven last batch (5 rows: 3 on worker 0, 2 on worker 1) and validation.
    for worker in multi_worker:
        _assert_the_run_of_one_process("mmoe", worker["mmoe"])
        assert "val_click/d0/auc" in worker["mmoe"]["distributed_logs"]


def test_evaluate_report_after_training_on_two_workers_is_that_of_one_process_on_each(multi_worker):
    for worker in multi_worker:
        _assert_the_report_of_one_process(*worker["mmoe"]["evaluate_reports"])


@pytest.mark.large
def test_two_workers_train_hamur_and_cesaa_as_one_process(tmp_path):
    for worker in multi_worker_results(tmp_path, ["hamur", "cesaa"]):
        for name in ("hamur", "cesaa"):
            _assert_the_run_of_one_process(name, worker[name])


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


def test_a_worker_other_than_the_chief_resumes_from_the_chiefs_backup_and_never_writes_it(tmp_path, monkeypatch):
    data = tiny_synthetic(300)
    train, validation = data.frame.iloc[:200], data.frame.iloc[200:]
    backup = tmp_path / "backup"

    def run(callbacks):
        model = km.build_model("shared_bottom", data.features, data.domain, data.tasks, data=data.frame,
                               bottom_units=[8], tower_units=[4])
        return km.training.train(model, train, validation, epochs=4, batch_size=100, learning_rate=1e-2,
                                 early_stopping_patience=3, monitor="val_loss", backup_dir=str(backup),
                                 jit_compile=False, verbose=0, callbacks=callbacks)

    with pytest.raises(KeyboardInterrupt):
        run([InterruptAtEpoch2()])  # the chief's checkpoint after 2 of 4 epochs
    written = {path: path.read_bytes() for path in backup.rglob("*") if path.is_file()}
    assert {path.name for path in written} >= {"latest.weights.h5", "early_stopping.json", "best_weights.npz"}
    monkeypatch.setattr(distributed, "is_chief", lambda strategy: False)
    history = run([])
    assert history.epoch == [2, 3], "resumed from the chief's checkpoint"
    assert {path: path.read_bytes() for path in backup.rglob("*") if path.is_file()} == written, "nor removed"


def _cli_config(folder):
    data = tiny_synthetic(600)
    data.frame.to_csv(folder / "train.csv", index=False)
    config = {
        "data": {"train": "train.csv", "split": {"seed": 1, "fractions": [0.7, 0.15, 0.15]}},
        "features": [{"name": "user_id", "type": "categorical", "embedding_dim": 4},
                     {"name": "age", "type": "numeric"}],
        "domain": {"column": "domain"},
        "tasks": [{"name": "click", "label": "click"}, {"name": "like", "label": "like", "mask": "click"}],
        "model": {"name": "shared_bottom", "params": {"bottom_units": [8], "tower_units": [4]}},
        # 420 training rows: 4 steps per epoch. Without XLA: each start would compile again.
        "training": {"epochs": 3, "batch_size": 128, "learning_rate": 0.01, "early_stopping_patience": 5, "seed": 3,
                     "jit_compile": False, "distribution": {"strategy": "multi_worker"}},
        "output": "run",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


@pytest.mark.large
def test_a_killed_worker_restarted_with_the_cluster_resumes_from_the_last_checkpoint(tmp_path):
    command = [sys.executable, os.path.join(HERE, "multi_worker_cli.py"), str(_cli_config(tmp_path))]
    codes = run_workers(command + ["2"], tmp_path, timeout=300, log="killed")
    logs = "\n".join((tmp_path / f"killed{i}.log").read_text()[-3000:] for i in range(2))
    # Worker 1 killed in epoch 2 (0-based); the chief stops when its heartbeats stop.
    assert codes[1] == -signal.SIGKILL and codes[0] != 0, logs
    assert "The following tasks are unhealthy (stopped sending heartbeats)" in logs
    assert json.loads((tmp_path / "run" / "backup" / "training_metadata.json").read_text())["epoch"] == 2

    codes = run_workers(command, tmp_path, timeout=300, log="restarted")
    logs = "\n".join((tmp_path / f"restarted{i}.log").read_text()[-3000:] for i in range(2))
    assert codes == [0, 0], logs
    assert "Trained; the chief writes" in (tmp_path / "restarted1.log").read_text()
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["history.json", "metrics.json", "model.keras", "report.png"]
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 1, "only the epoch in progress again"
    model = keras.saving.load_model(run / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == 3 * 4, "nothing lost: the optimizer state of epochs 0-1 too"
    assert json.loads((run / "metrics.json").read_text())["test"]["tasks"]["click"]["domains"]["d0"]["count"] > 0
