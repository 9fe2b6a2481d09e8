"""Training: masked losses, early stopping that restores the best epoch, resume after interruption."""

import numpy as np
import pytest
from training_callbacks import EpochRecorder, InterruptAtEpoch2

import keras_mdr as km
from keras_mdr.testing import tiny_synthetic


@pytest.fixture(scope="module")
def data():
    data = tiny_synthetic(600)
    train, validation = km.data.random_split(data.frame, (0.7, 0.3), seed=0)
    return data, train, validation


def _model(data):
    return km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                          data=data.frame, bottom_units=[8], tower_units=[4])


def test_early_stopping_restores_the_best_epoch_even_when_all_epochs_run(data):
    data, train, validation = data
    model = _model(data)
    recorder = EpochRecorder(spoil_at=3)
    km.training.train(model, train, validation, epochs=4, batch_size=128, learning_rate=1e-2,
                      early_stopping_patience=10, monitor="val_loss", verbose=0, callbacks=[recorder])
    best = int(np.argmin(recorder.val_loss))
    assert best != 3, "the spoiled last epoch should not be the best"
    for restored, recorded in zip(model.get_weights(), recorder.weights[best]):
        np.testing.assert_array_equal(restored, recorded)


def test_an_interrupted_run_resumes_where_it_stopped(data, tmp_path):
    data, train, validation = data
    backup = str(tmp_path / "backup")
    first = EpochRecorder()
    with pytest.raises(KeyboardInterrupt):
        km.training.train(_model(data), train, validation, epochs=4, batch_size=128, learning_rate=1e-2,
                          early_stopping_patience=10, monitor="val_loss", backup_dir=backup, verbose=0,
                          callbacks=[first, InterruptAtEpoch2()])
    assert len(first.val_loss) == 2

    model = _model(data)
    second = EpochRecorder()
    history = km.training.train(model, train, validation, epochs=4, batch_size=128, learning_rate=1e-2,
                                early_stopping_patience=10, monitor="val_loss", backup_dir=backup, verbose=0,
                                callbacks=[second])
    assert history.epoch == [2, 3], "the resumed run must train only the epochs that were left"
    steps_per_epoch = -(-len(train) // 128)
    assert int(model.optimizer.iterations) == 4 * steps_per_epoch, "the optimizer state was restored too"
    # The weights at the start of epoch 2 are those saved at the end of epoch 1: its loss goes on falling.
    assert second.val_loss[0] < first.val_loss[0]
    # Early stopping kept its memory: the best of all four epochs is restored.
    all_losses = first.val_loss + second.val_loss
    all_weights = first.weights + second.weights
    best = int(np.argmin(all_losses))
    for restored, recorded in zip(model.get_weights(), all_weights[best]):
        np.testing.assert_allclose(restored, recorded, atol=1e-6)
    assert not (tmp_path / "backup").exists(), "a finished run removes its backup"


def test_masked_labels_do_not_count_in_the_loss(data):
    data, train, _ = data
    model = _model(data)
    frame = train.iloc[:64].reset_index(drop=True)
    x, y = next(iter(model.make_dataset(frame, batch_size=64)))
    predictions = model(x)
    loss = float(model.compute_loss(x, y, predictions))
    expected = 0.0
    for task in data.tasks:
        labels, p = y[task.name].numpy(), np.clip(predictions[task.name].numpy(), 1e-7, 1 - 1e-7)
        keep = labels >= 0
        expected += np.mean(-(labels[keep] * np.log(p[keep]) + (1 - labels[keep]) * np.log(1 - p[keep])))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert (y["like"].numpy() == -1).sum() == (frame["click"] == 0).sum()


def test_domain_task_mean_loss_averages_present_groups(data):
    data, train, _ = data
    model = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                           data=data.frame, bottom_units=[8], tower_units=[4], loss_reduction="domain_task_mean")
    frame = train[train["domain"] != "d2"].iloc[:64].reset_index(drop=True)
    x, y = next(iter(model.make_dataset(frame, batch_size=64)))
    predictions = model(x)
    loss = float(model.compute_loss(x, y, predictions))
    domains = x["__domain__"].numpy()
    groups = []
    for task in data.tasks:
        labels, p = y[task.name].numpy(), np.clip(predictions[task.name].numpy(), 1e-7, 1 - 1e-7)
        for d in range(3):
            keep = (labels >= 0) & (domains == d)
            if keep.any():
                groups.append(np.mean(-(labels[keep] * np.log(p[keep]) + (1 - labels[keep]) * np.log(1 - p[keep]))))
    assert len(groups) == 4, "d2 is absent from the batch: two domains x two tasks"
    assert loss == pytest.approx(np.mean(groups), rel=1e-5)
