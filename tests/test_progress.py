"""What `fit` prints: a short progress line, a per-(domain, task) table per epoch; every metric in the History."""

import re

import keras
import pytest

import keras_mdr as km
from keras_mdr.training.progress import MAX_LINE_LENGTH, headline_metrics

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _data(num_tasks):
    """Synthetic rows in 6 domains with `num_tasks` tasks (extra tasks copy the labels)."""
    data = km.data.synthetic(num_rows=900, num_domains=6, num_users=50, num_items=40, seed=3, embedding_dim=4)
    frame = data.frame.copy()
    tasks = list(data.tasks)
    for index in range(num_tasks - len(tasks)):
        frame[f"task_{index}"] = frame["click"]
        tasks.append(km.Task(f"task_{index}", mask="click"))
    train, valid = km.data.random_split(frame, (0.7, 0.3), seed=0)
    model = km.build_model(
        "shared_bottom", features=data.features, domain=data.domain, tasks=tasks, data=train,
        bottom_units=[4], tower_units=[2],
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)  # printing is all this tests
    return model, train, valid


def _printed_lines(text):
    """What a person sees: Keras redraws the bar with \\r and \\b; colours are not characters."""
    return [line for line in re.split(r"[\r\n\b]+", ANSI.sub("", text)) if line.strip()]


def test_the_bar_shows_the_loss_and_each_tasks_auc_a_table_follows_each_epoch_and_verbose_0_is_silent(capsys):
    model, train, valid = _data(num_tasks=2)
    history = model.fit(train, validation_data=valid, epochs=2, batch_size=64, verbose=1)
    lines = _printed_lines(capsys.readouterr().out)
    bar = [line for line in lines if "ms/step" in line or "s/step" in line]
    assert bar and all("/d0/" not in line and "logloss" not in line for line in bar), bar[-1]
    assert all(f" - {key}: " in bar[-1] for key in ("loss", "click_auc", "like_auc", "val_click_auc", "val_like_auc"))
    assert max(len(line) for line in lines) <= MAX_LINE_LENGTH
    for epoch in (1, 2):
        title = lines.index(f"Epoch {epoch}, validation: AUC / logloss per domain and task")
        assert lines[title + 1].split() == ["domain", "|", "click", "|", "like"]
        assert [line.split()[0] for line in lines[title + 4 : title + 11]] == [f"d{i}" for i in range(6)] + ["all"]
    # The History keeps every metric: per task, per (domain, task), and validation.
    assert {"click/d5/auc", "like/d0/logloss", "val_like/d3/auc", "val_click_auc"} <= set(history.history)

    model.fit(train, validation_data=valid, epochs=1, batch_size=64, verbose=0)
    model.evaluate(valid, batch_size=64, verbose=0)
    assert capsys.readouterr().out == ""


def test_many_domains_and_tasks_keep_every_line_under_200_characters(capsys):
    model, train, valid = _data(num_tasks=5)
    progress = km.training.ProgressLogger(table_every_epochs=2)
    history = model.fit(train, validation_data=valid, epochs=3, batch_size=64, verbose=1, callbacks=[progress])
    lines = _printed_lines(capsys.readouterr().out)
    assert max(len(line) for line in lines) <= MAX_LINE_LENGTH, max(lines, key=len)
    bar = [line for line in lines if "/step" in line]
    assert " - auc: " in bar[-1] and " - val_auc: " in bar[-1] and "click_auc" not in bar[-1]
    tables = [line for line in lines if line.endswith("AUC / logloss per domain and task")]
    assert [line.split(",")[0] for line in tables] == ["Epoch 2", "Epoch 3"]  # every 2nd epoch and the last
    assert len(history.history) == 2 * (1 + 2 + 2 * 5 + 2 * 5 * 6)  # loss, mean auc/logloss, per task, per domain

    model.fit(train, validation_data=valid, epochs=1, batch_size=64, verbose=2)
    lines = _printed_lines(capsys.readouterr().out)
    assert max(len(line) for line in lines) <= MAX_LINE_LENGTH
    assert len([line for line in lines if " - val_auc: " in line]) == 1
    assert lines[1] == "Epoch 1, validation: AUC / logloss per domain and task"


@pytest.mark.parametrize(
    "tasks,shown",
    [
        (["click", "like"], ["loss", "click_auc", "like_auc"]),
        (["click", "like", "conversion"], ["loss", "auc"]),
        (["a_very_long_task_name_indeed", "like"], ["loss", "auc"]),
    ],
)
def test_per_task_aucs_give_way_to_the_mean_when_the_line_would_be_too_long(tasks, shown):
    assert headline_metrics(tasks) == shown
