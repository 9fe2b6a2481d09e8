"""`keras-mdr transfer --config`: a new domain on a saved model from the command line."""

import json

import keras
import numpy as np
import pytest
import yaml

import keras_mdr as km
from keras_mdr import cli
from keras_mdr.testing import tiny_synthetic


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A saved source model of domains d0 and d1, and CSVs: d2's training and validation rows, a test set of all."""
    path = tmp_path_factory.mktemp("transfer_cli")
    data = tiny_synthetic(num_rows=600, seed=5)
    frame = data.frame
    old, new = frame[frame.domain != "d2"], frame[frame.domain == "d2"]
    keras.utils.set_random_seed(2)
    model = km.build_model("shared_bottom", features=data.features, domain=km.Domain("domain", values=["d0", "d1"]),
                           tasks=data.tasks, data=old, bottom_units=[8], tower_units=[4])
    model.save(path / "source.keras")
    new.iloc[: len(new) // 2].to_csv(path / "new_train.csv", index=False)
    new.iloc[len(new) // 2 :].to_csv(path / "new_valid.csv", index=False)
    frame.to_csv(path / "test.csv", index=False)
    return path


def _config(workdir, **transfer):
    config = {
        "data": {"train": "new_train.csv", "validation": "new_valid.csv", "test": "test.csv"},
        "transfer": {"from": "source.keras", "domain_values": ["d2"], "method": "lora", "params": {"rank": 2},
                     **transfer},
        "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "early_stopping_patience": 1,
                     "seed": 3, "jit_compile": False},
        "output": "run",
    }
    path = workdir / "transfer.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_transfer_writes_metrics_of_old_and_new_domains_and_leaves_the_source_as_it_was(workdir, capsys):
    source_bytes = (workdir / "source.keras").read_bytes()
    assert cli.main(["transfer", "--config", str(_config(workdir))]) == 0
    assert "trainable" in capsys.readouterr().out  # the trainable / total parameter table
    run = workdir / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}
    for task in ("click", "like"):
        assert set(metrics["test"]["tasks"][task]["domains"]) == {"d0", "d1", "d2"}
        validation = metrics["validation"]["tasks"][task]["domains"]
        assert validation["d2"]["count"] > 0 and validation["d0"]["count"] == validation["d1"]["count"] == 0
    assert (workdir / "source.keras").read_bytes() == source_bytes

    source = keras.saving.load_model(workdir / "source.keras")
    model = keras.saving.load_model(run / "model.keras")
    assert model.domain.names == ["d0", "d1", "d2"] and model.transfer["method"] == "lora"
    old = km.data.read_table(workdir / "test.csv", model.features, model.domain)
    old = old[old.domain != "d2"]
    expected = source.predict(old)
    for task, values in model.predict(old).items():
        np.testing.assert_allclose(values, expected[task], atol=1e-6, err_msg=task)


@pytest.mark.parametrize(
    "transfer, message",
    [
        ({"domain_values": ["d1"]}, "'d1' is already a domain of column 'domain'"),
        ({"from": "test.csv"}, "is not a keras_mdr model"),
        ({"method": "prompt"}, "method must be one of"),
    ],
    ids=["existing-domain", "not-a-model", "unknown-method"],
)
def test_bad_transfer_configs_exit_2_with_the_problem_named(workdir, capsys, transfer, message):
    source_bytes = (workdir / "source.keras").read_bytes()
    assert cli.main(["transfer", "--config", str(_config(workdir, **transfer))]) == 2
    err = capsys.readouterr().err
    assert "keras-mdr transfer: error:" in err and message in err, err
    assert (workdir / "source.keras").read_bytes() == source_bytes
